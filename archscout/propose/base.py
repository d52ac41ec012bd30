"""The Researcher's interface: what a proposer is given and what it must return.

The loop hands every proposer the same `ProposalContext` (the sampled parent, the reference
architectures, the baseline's numbers, and any feedback from a rejected earlier attempt) and
expects a `Proposal`: a complete candidate source file plus a name and a motivation. The offline
genome proposer (mutate.py) and the LLM planner implement it, so nothing downstream knows which one
wrote a candidate. This module holds the interface only.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from pydantic import BaseModel, Field

from archscout.records import ArchView


class ProposalContext(BaseModel):
    parent: ArchView | None
    references: list[ArchView] = Field(default_factory=list)
    baseline: dict[str, Any] = Field(default_factory=dict)  # BaselineRef as a dict
    feedback: str = ""  # why the previous attempt in this experiment was rejected (novelty, probe)
    attempt: int = 0
    experiment_seq: int = 0


class Proposal(BaseModel):
    name: str
    motivation: str
    code: str
    genome: dict[str, Any] | None = None  # the offline proposer's structured description
    origin: str = "offline"  # offline | llm


class Proposer(Protocol):
    name: str

    def propose(self, ctx: ProposalContext, rng: random.Random) -> Proposal: ...
