"""The LLM research team as the loop sees it: the agents behind the loop's existing stages.

With `proposer = "llm"` the loop (loop.py) keeps its stages and asks this object at fixed points:

    propose   planner writes the file; reviewer checks it; novelty judge + diversifier on a repeat
    check     a probe failure goes back to the planner with the probe's reason (bounded)
    evaluate  a failed training run goes to the debugger with its log tail (bounded, each recorded)
    score     the rubric judge's normalised score is the fitness's judge term (missing if it fails)
    analyze   the Analyst's five sections, the cognition its shortcomings retrieve, the Summarizer's
              experience digest (computed once per architecture, read by later planner calls)

Every call is recorded in the study's ledger with the experiment (and, once it exists, the
architecture) it served, which makes `show ID --trace` a query. What is not here: the prompts and
output models (planner.py, reviewer.py, debugger.py, judge.py, analyst.py beside this module), the
HTTP clients (client.py and the providers) and the stages themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from archscout.records import ArchView
from archscout.analyze.fitness import BaselineRef
from archscout.agents.judge import judge as judge_call
from archscout.agents.analyst import analyze_with_cognition, render_analysis, summarize
from archscout.agents.debugger import debug_code
from archscout.agents.reviewer import review_code
from archscout.agents.planner import LLMProposer, judge_novelty
from archscout.propose.base import Proposal, ProposalContext
from archscout.agents.base import LLMConfig, LLMError, Repeated
from archscout.agents.client import LLMClient
from archscout.records import RunResult

# The log tail the debugger sees: enough for a traceback, not a whole training log.
LOG_TAIL_CHARS = 4000


class BoundClient:
    """An LLMClient whose calls are filed under one experiment (and architecture) in the ledger."""

    def __init__(self, client: LLMClient, experiment_id: int | None, architecture_id: int | None = None):
        self.client, self.experiment_id, self.architecture_id = client, experiment_id, architecture_id

    def call(self, agent: str, **kwargs: Any) -> BaseModel:
        # agents pass their own ids as None when they know none; the bound ones fill the gap
        if kwargs.get("experiment_id") is None:
            kwargs["experiment_id"] = self.experiment_id
        if kwargs.get("architecture_id") is None:
            kwargs["architecture_id"] = self.architecture_id
        return self.client.call(agent, **kwargs)


class _Ping(BaseModel):
    ok: bool


class Team:
    """The agents of one study, sharing one client (one ledger, one budget)."""

    def __init__(self, study, client: LLMClient | None = None, cognition=None):
        from archscout.cognition.index import CognitionBase

        self.db = study.db
        self.config: LLMConfig = study.config.llm
        self.client = client or LLMClient(self.config, ledger=study.db.ledger)
        extra = [study.folder / d for d in study.config.cognition_dirs]
        self.cognition = cognition if cognition is not None else CognitionBase.load(extra)
        self.proposer = LLMProposer(self.client, cognition=self.cognition, experience=self.experience,
                                    k=self.config.cognition_k)

    # -- what the loop reads (team.ResearchTeam) ----------------------------------------------------

    @property
    def probe_attempts(self) -> int:
        return self.config.probe_attempts

    @property
    def debug_attempts(self) -> int:
        return self.config.debug_attempts

    def cost(self, exp_id: int) -> float | None:
        return self.db.ledger.experiment_cost(exp_id)

    def preflight(self) -> None:
        """One tiny call before any work: a missing key or dead endpoint stops `run` in one line."""
        self.client.call("check", system="ROLE: check\nReply with JSON only.", user='Reply {"ok": true}.',
                         schema=_Ping)

    def bound(self, experiment_id: int | None, architecture_id: int | None = None) -> BoundClient:
        return BoundClient(self.client, experiment_id, architecture_id)

    # -- propose ----------------------------------------------------------------------------------

    def propose(self, exp_id: int, ctx: ProposalContext, rng) -> Proposal:
        self.proposer.experiment_id = exp_id
        return self.proposer.propose(ctx, rng)

    def review(self, exp_id: int, proposal: Proposal) -> tuple[Proposal, str]:
        """The reviewer's fixed file replaces the proposal's; returns (proposal, note for the log)."""
        if not self.config.review:
            return proposal, ""
        verdict = review_code(self.bound(exp_id), proposal)
        if verdict.fixed_code and verdict.fixed_code.strip() != proposal.code.strip():
            proposal = proposal.model_copy(update={"code": verdict.fixed_code})
            return proposal, "reviewer fixed: " + "; ".join(verdict.issues)[:300]
        return proposal, ""

    def novelty(self, exp_id: int, ctx: ProposalContext, proposal: Proposal,
                similar: Callable[[], list[tuple[int, str]]]) -> tuple[Proposal, str]:
        """Judge against the most similar earlier motivations (`similar()`: [(id, motivation)]);
        diversify (bounded) on a repeat.

        Returns the proposal to keep and a note; raises `Repeated` when every diversified idea is
        judged a repeat too.
        """
        similar = similar()
        if not similar:
            return proposal, ""
        bound = self.bound(exp_id)
        self.proposer.experiment_id = exp_id
        verdict = judge_novelty(bound, proposal.motivation, similar)
        tries = 0
        while verdict.repeated:
            if tries >= self.config.diversify_attempts:
                raise Repeated(verdict.reason)
            tries += 1
            proposal = self.proposer.diversify(ctx, proposal, verdict.reason)
            verdict = judge_novelty(bound, proposal.motivation, similar)
        return proposal, f"diversified {tries}x" if tries else ""

    # -- evaluate ---------------------------------------------------------------------------------

    def debug(self, exp_id: int, arch_id: int, code: str, result: RunResult, attempt: int) -> tuple[str, str]:
        """The debugger's (fixed code, diagnosis) for a failed training run."""
        failure = result.failure
        log_tail = (failure.log_tail or failure.message or "")[-LOG_TAIL_CHARS:]
        out = debug_code(self.bound(exp_id, arch_id), code, failure.kind.value, log_tail, attempt)
        return out.code, out.diagnosis

    # -- score ------------------------------------------------------------------------------------

    def judge(self, exp_id: int, arch_id: int, code: str, result: RunResult, ref: BaselineRef,
              reference_code: str | None) -> tuple[float | None, dict[str, Any]]:
        """(normalised score, stored numbers); a failed judge call gives (None, {"error": ...})."""
        results = {"val_loss": result.val_loss, "benchmark": result.benchmark, "params": result.params,
                   "tokens_per_s": result.tokens_per_s}
        try:
            out = judge_call(self.bound(exp_id, arch_id), code, results, ref, reference_code=reference_code)
        except LLMError as err:
            return None, {"error": str(err)}
        return out.normalized(), {"normalized": out.normalized(), **out.model_dump(mode="json")}

    # -- analyze ----------------------------------------------------------------------------------

    def analyze(self, exp_id: int, candidate: ArchView, ref: BaselineRef, parent: ArchView | None,
                grandparent: ArchView | None, siblings: list[ArchView],
                numbers: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        """(analysis text, numbers to store incl. cognition ids, experience digest)."""
        bound = self.bound(exp_id, candidate.id)
        arch = self.db.architecture(candidate.id)
        out, hits = analyze_with_cognition(
            bound, self.cognition, k=self.config.cognition_k, candidate=candidate, baseline_ref=ref,
            parent=parent, grandparent=grandparent, siblings=siblings, numbers=numbers,
            motivation=arch.motivation if arch else "",
        )
        stored = {
            "sections": out.model_dump(mode="json"),
            "shortcomings": out.shortcomings,
            "cognition": [h.entry.id for h in hits],
            "cognition_titles": [h.entry.title for h in hits],
        }
        text = render_analysis(out, hits)
        experience = summarize(bound, text, hits)
        return text, stored, experience

    def experience(self, arch_id: int) -> str:
        """The Summarizer's digest of an architecture, computed once at its analysis and cached."""
        rows = self.db.analyses_for(arch_id, "experience")
        return rows[-1].text if rows else ""

