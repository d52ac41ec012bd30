"""The research team as the loop sees it: one small protocol, and the offline team that implements it.

The loop (loop.py) asks its team at fixed points of each stage and never asks which team it has:

    propose   `propose` writes a file, `review` may fix it, `novelty` may diversify a repeat
    check     a probe failure goes back to `propose`, at most `probe_attempts` times
    evaluate  a failed training run goes to `debug`, at most `debug_attempts` times
    score     `judge`: the fitness's judge term when the study's judge is "llm"
    analyze   `analyze`: text added to the statistical analysis (which every study gets)
    finish    `cost`: what the experiment's calls cost

`OfflineTeam` is the genome proposer (propose/mutate.py) with a reviewer that passes the file
through, no novelty judge, no re-planning or debugging, no LLM judge (the efficiency judge in
analyze/fitness.py scores) and no text beyond the statistical analyst's. The LLM team
(`agents.team.Team`) implements the same methods with the agents; this module does not import it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

from archscout.analyze.fitness import BaselineRef
from archscout.propose.base import Proposal, ProposalContext, Proposer
from archscout.propose.mutate import OfflineProposer
from archscout.records import ArchView, RunResult

# the earlier architectures whose motivations are most like a proposal's: [(id, motivation)]
Similar = Callable[[], list[tuple[int, str]]]


class ResearchTeam(Protocol):
    proposer: Proposer
    probe_attempts: int  # re-plans after a probe failure
    debug_attempts: int  # debugger rounds after a failed training run

    def preflight(self) -> None:
        """Before any work: fail fast when the team cannot work at all (an LLM endpoint down)."""

    def propose(self, exp_id: int, ctx: ProposalContext, rng: random.Random) -> Proposal: ...

    def review(self, exp_id: int, proposal: Proposal) -> tuple[Proposal, str]:
        """(the proposal to keep, a note for the experiment's log)."""

    def novelty(self, exp_id: int, ctx: ProposalContext, proposal: Proposal,
                similar: Similar) -> tuple[Proposal, str]:
        """(the proposal to keep, a note); raises `agents.base.Repeated` to reject it."""

    def debug(self, exp_id: int, arch_id: int, code: str, result: RunResult, attempt: int) -> tuple[str, str]:
        """(fixed code, diagnosis) for a failed training run."""

    def judge(self, exp_id: int, arch_id: int, code: str, result: RunResult, ref: BaselineRef,
              reference_code: str | None) -> tuple[float | None, dict[str, Any] | None]:
        """(normalised judge score or None, numbers to store or None for nothing to store)."""

    def analyze(self, exp_id: int, candidate: ArchView, ref: BaselineRef, parent: ArchView | None,
                grandparent: ArchView | None, siblings: list[ArchView],
                numbers: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
        """(analysis text, numbers, experience digest), or None for no analysis beyond the statistical one."""

    def cost(self, exp_id: int) -> float | None:
        """What the experiment's calls cost in dollars; None when nothing was called."""


class OfflineTeam:
    """The team without a language model: the genome proposer; every other member passes."""

    probe_attempts = 0
    debug_attempts = 0

    def __init__(self, proposer: Proposer | None = None):
        self.proposer = proposer or OfflineProposer()

    def preflight(self) -> None:
        return None

    def propose(self, exp_id: int, ctx: ProposalContext, rng: random.Random) -> Proposal:
        return self.proposer.propose(ctx, rng)

    def review(self, exp_id: int, proposal: Proposal) -> tuple[Proposal, str]:
        return proposal, ""

    def novelty(self, exp_id: int, ctx: ProposalContext, proposal: Proposal,
                similar: Similar) -> tuple[Proposal, str]:
        # only exact code duplicates are rejected offline (by the loop); `similar` is never computed
        return proposal, ""

    def debug(self, exp_id: int, arch_id: int, code: str, result: RunResult, attempt: int) -> tuple[str, str]:
        raise AssertionError("the offline team has no debugger (debug_attempts = 0)")

    def judge(self, exp_id: int, arch_id: int, code: str, result: RunResult, ref: BaselineRef,
              reference_code: str | None) -> tuple[float | None, dict[str, Any] | None]:
        # an "llm" judge term without an LLM is missing, and nothing is stored for it
        return None, None

    def analyze(self, exp_id: int, candidate: ArchView, ref: BaselineRef, parent: ArchView | None,
                grandparent: ArchView | None, siblings: list[ArchView],
                numbers: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
        return None

    def cost(self, exp_id: int) -> float | None:
        return None
