"""The LLM Researcher: the planner that writes candidates, the novelty judge and the diversifier.

- `LLMProposer` implements the `Proposer` protocol (name "llm"). It shows the model the parent
  (code, numbers against the baseline, its latest analysis and cached experience digest), the four
  references, cognition entries retrieved for the parent's weaknesses, and `ctx.feedback` from a
  rejected earlier attempt, and turns the reply into a `Proposal(origin="llm")`.
- `judge_novelty` asks whether a motivation repeats one of its nearest earlier motivations.
- `diversify` asks for an orthogonal idea after a proposal was judged repeated.

Each is one prompt pair (prompts/<agent>.*.j2), one pydantic output model and one call through the
LLM client. Not here: syntax, duplicate and probe checks and the retry loop around them (the study
loop does those and reports back through `ctx.feedback`), the embedding-based near-duplicate search
that supplies `similar` (novelty.py), and any database access. LLM errors (LLMInvalid,
LLMUnavailable, BudgetExhausted) propagate to the caller, which decides whether to fall back.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, Field, field_validator

from archscout.propose.base import Proposal, ProposalContext
from archscout.records import ArchView
from archscout.agents.prompts import cognition_view, render_pair, shorten, strip_fence

# a query longer than this only dilutes BM25 and the embedding; the start of an analysis is its gist
QUERY_CHARS = 1_500


class Client(Protocol):
    """What the agents need of `archscout.agents.client.LLMClient`."""

    def call(self, agent: str, *, system: str, user: str, schema: type, experiment_id: int | None = None,
             architecture_id: int | None = None) -> Any: ...


class Retriever(Protocol):
    """What the agents need of `archscout.cognition.index.CognitionBase`."""

    def search(self, query: str, k: int = 3) -> list[Any]: ...


class PlannerOut(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    motivation: str = Field(min_length=1)
    code: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        # the name labels the architecture everywhere (dashboard, reports, files): keep it one word
        cleaned = re.sub(r"\W+", "", value.strip().replace(" ", "_"))
        if not cleaned:
            raise ValueError("name must contain letters or digits")
        return cleaned

    @field_validator("code")
    @classmethod
    def _unfence(cls, value: str) -> str:
        return strip_fence(value)

    def proposal(self) -> Proposal:
        return Proposal(name=self.name, motivation=self.motivation.strip(), code=self.code, origin="llm")


class NoveltyVerdict(BaseModel):
    repeated: bool
    reason: str = ""


def retrieve(cognition: Retriever | None, query: str, k: int) -> list[Any]:
    """Up to k cognition hits for `query`; none without a base, a query or a positive k."""
    query = shorten(query, QUERY_CHARS)
    if cognition is None or k < 1 or not query:
        return []
    return list(cognition.search(query, k))


def weakness_query(parent: ArchView | None, experience: str = "") -> str:
    """What to search the cognition base with: the parent's weaknesses as its analysis and digest
    state them, else its motivation; empty for a first proposal with no parent."""
    if parent is None:
        return ""
    return "\n".join(t for t in (experience, parent.analysis) if t.strip()) or parent.motivation


def _context(ctx: ProposalContext, experience: str, hits: Sequence[Any]) -> dict[str, Any]:
    return {
        "parent": ctx.parent,
        "references": ctx.references,
        "baseline": ctx.baseline,
        "experience": experience,
        "cognition": cognition_view(hits),
        "feedback": ctx.feedback,
        "attempt": ctx.attempt,
    }


class LLMProposer:
    """The planner agent behind the `Proposer` protocol.

    `experience(arch_id) -> str` returns the cached experience digest of an architecture (the
    caller builds it with `agents.analyst.summarize`); `k` cognition entries are retrieved per
    proposal. The ledger wants the experiment's database id, which `ProposalContext` does not
    carry (only its sequence number): the caller sets `proposer.experiment_id = exp.id` before
    calling `propose`; it stays None otherwise and the calls are recorded without one.

    `last_hits` keeps the cognition hits used by the latest proposal, so the caller can store which
    entries grounded it.
    """

    name = "llm"

    def __init__(
        self,
        client: Client,
        cognition: Retriever | None = None,
        experience: Callable[[int], str] | None = None,
        k: int = 3,
    ):
        self.client = client
        self.cognition = cognition
        self.experience = experience
        self.k = k
        self.experiment_id: int | None = None
        self.last_hits: list[Any] = []

    def _experience_of(self, parent: ArchView | None) -> str:
        if parent is None or self.experience is None:
            return ""
        return self.experience(parent.id) or ""

    def propose(self, ctx: ProposalContext, rng: random.Random | None = None) -> Proposal:
        """One proposal; `rng` is unused (sampling randomness lives in the model), accepted for the
        protocol."""
        experience = self._experience_of(ctx.parent)
        self.last_hits = retrieve(self.cognition, weakness_query(ctx.parent, experience), self.k)
        system, user = render_pair("planner", **_context(ctx, experience, self.last_hits))
        out = self.client.call(
            "planner", system=system, user=user, schema=PlannerOut, experiment_id=self.experiment_id
        )
        return out.proposal()

    def diversify(self, ctx: ProposalContext, rejected: Proposal, reason: str) -> Proposal:
        """`diversify` with this proposer's cognition, experience and experiment id."""
        return diversify(
            self.client, ctx, rejected, reason, cognition=self.cognition, experience=self._experience_of(ctx.parent),
            k=self.k, experiment_id=self.experiment_id,
        )


def judge_novelty(
    client: Client,
    motivation: str,
    similar: list[tuple[int, str]],
    *,
    experiment_id: int | None = None,
) -> NoveltyVerdict:
    """Does `motivation` repeat one of `similar` ((architecture id, motivation) pairs, nearest
    first)? With nothing similar there is nothing to repeat, and no call is made."""
    if not similar:
        return NoveltyVerdict(repeated=False, reason="no similar earlier architecture")
    system, user = render_pair("novelty", motivation=motivation, similar=list(similar))
    return client.call("novelty", system=system, user=user, schema=NoveltyVerdict, experiment_id=experiment_id)


def diversify(
    client: Client,
    ctx: ProposalContext,
    rejected: Proposal,
    reason: str,
    *,
    cognition: Retriever | None = None,
    experience: str = "",
    k: int = 3,
    experiment_id: int | None = None,
) -> Proposal:
    """A new proposal on an orthogonal mechanism, after `rejected` was judged a repeat for `reason`.

    Cognition is queried with the parent's weaknesses, as the planner does, so the new idea stays
    grounded; pass the planner's `cognition` and `experience` (LLMProposer.diversify does)."""
    hits = retrieve(cognition, weakness_query(ctx.parent, experience), k)
    system, user = render_pair("diversifier", **_context(ctx, experience, hits), rejected=rejected, reason=reason)
    out = client.call("diversifier", system=system, user=user, schema=PlannerOut, experiment_id=experiment_id)
    return out.proposal()
