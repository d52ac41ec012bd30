"""The LLM code reviewer: reads a proposal before it is trained and flags what would waste the run.

It checks what the probes can only detect after the fact, or not at all: masking and causality
mistakes, hidden quadratic cost (an L x L tensor over the whole sequence), chunking errors (no
padding for a remainder, state not carried across chunks) and assumptions about batch size or
sequence length. The reply may carry a corrected file; `apply_review` turns that into a revised
proposal. Whether to review at all, and what to do when the reviewer and the probes disagree, is the
caller's decision; this module makes one call and has no database access. LLM errors propagate.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from archscout.propose.base import Proposal
from archscout.agents.planner import Client
from archscout.agents.prompts import render_pair, strip_fence


class ReviewOut(BaseModel):
    ok: bool
    issues: list[str] = Field(default_factory=list)
    fixed_code: str | None = None  # the complete corrected file, when the reviewer could fix it

    @field_validator("fixed_code")
    @classmethod
    def _unfence(cls, value: str | None) -> str | None:
        # an empty string is the model's way of saying "no fix" as often as null is
        if value is None or not value.strip():
            return None
        return strip_fence(value)


def review_code(
    client: Client,
    proposal: Proposal,
    *,
    experiment_id: int | None = None,
    architecture_id: int | None = None,
) -> ReviewOut:
    """One review of `proposal`'s code (and its motivation, to judge faithfulness)."""
    system, user = render_pair("reviewer", proposal=proposal)
    return client.call(
        "reviewer", system=system, user=user, schema=ReviewOut,
        experiment_id=experiment_id, architecture_id=architecture_id,
    )


def apply_review(proposal: Proposal, review: ReviewOut) -> Proposal:
    """`proposal` with the reviewer's fixed code when it offered one, else unchanged.

    The issues are appended to the motivation so the record says why the code differs from what
    the planner wrote."""
    if review.ok or review.fixed_code is None or review.fixed_code == proposal.code:
        return proposal
    note = "\n\nReviewer fixes: " + "; ".join(review.issues) if review.issues else ""
    return proposal.model_copy(update={"code": review.fixed_code, "motivation": proposal.motivation + note})
