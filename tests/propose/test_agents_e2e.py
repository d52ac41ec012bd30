"""Each agent end to end: real prompts, the real LLMClient and OpenAI SDK, a local scripted server."""

from __future__ import annotations

import json
import random

import pytest

from archscout.analyze.analyst import ArchSummary
from archscout.analyze.fitness import BaselineRef
from archscout.analyze.judge import judge
from archscout.analyze.llm_analyst import (
    analyze_with_cognition,
    render_analysis,
    summarize,
)
from archscout.cognition.index import CognitionBase
from archscout.evaluate.debug import debug_code
from archscout.propose.base import ArchView, Proposal, ProposalContext
from archscout.propose.code_review import review_code
from archscout.propose.llm.base import LLMConfig, LLMInvalid
from archscout.propose.llm.client import LLMClient
from archscout.propose.llm.scripted import ScriptedServer, prompt_text
from archscout.propose.planner import LLMProposer, diversify, judge_novelty
from archscout.records import FailureKind
from archscout.space import baseline_path

CODE = baseline_path("deltanet").read_text()
REF = BaselineRef(n=3, val_loss_mean=3.2, val_loss_std=0.02, benchmark_mean=0.4, benchmark_std=0.01)
NEW_CODE = CODE.replace("beta = self.beta_proj(hidden_states).sigmoid()", "beta = 2 * self.beta_proj(hidden_states).sigmoid()")
ANALYSIS = {
    "design_evaluation": "Doubles beta.", "results_analysis": "Loss -0.1, 5 sigma.",
    "expectation_vs_reality": "As predicted.", "theoretical_explanation": "Faster overwriting.",
    "synthesis": "Keep it.", "shortcomings": "the state saturates and forgets old associations",
}
SCORES = {d: {"score": s, "rationale": "r"} for d, s in
          (("performance", 7), ("innovation", 6), ("complexity", 5), ("implementation_quality", 8))}


class Ledger:
    """Stands in for the study database's ledger: keeps the rows the client writes."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, **row):
        self.rows.append(row)

    def totals(self):
        return {"calls": len(self.rows), "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}


class SpyCognition:
    def __init__(self, hits):
        self.hits, self.queries = hits, []

    def search(self, query, k=3):
        self.queries.append((query, k))
        return self.hits[:k]


@pytest.fixture
def llm(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted")
    with ScriptedServer() as server:
        ledger = Ledger()
        client = LLMClient(LLMConfig(base_url=server.openai_base_url, max_retries=0, timeout_s=10), ledger=ledger)
        yield server, client, ledger


def prompts(server, i=-1) -> tuple[str, str]:
    return prompt_text(server.requests[i], "openai")


def parent_ctx(feedback: str = "") -> ProposalContext:
    parent = ArchView(id=7, name="DeltaNet", code=CODE, motivation="the seed", fitness=0.5, val_loss=3.2,
                      analysis="Recall is weak: the state saturates and forgets old associations.")
    return ProposalContext(parent=parent, references=[parent], baseline=REF.model_dump(), feedback=feedback,
                           attempt=1 if feedback else 0, experiment_seq=4)


def test_planner_proposes_through_the_client_with_feedback_and_cognition(llm):
    server, client, ledger = llm
    base = CognitionBase.load(backend="bm25")
    proposer = LLMProposer(client, cognition=base, experience=lambda arch_id: f"digest of #{arch_id}", k=2)
    proposer.experiment_id = 41
    server.enqueue(json.dumps({"name": "DoubleBeta", "motivation": "Faster overwriting.", "code": NEW_CODE}))
    proposal = proposer.propose(parent_ctx("forward raised RuntimeError: shape mismatch"), random.Random(0))

    assert proposal == Proposal(name="DoubleBeta", motivation="Faster overwriting.", code=NEW_CODE, origin="llm")
    system, user = prompts(server)
    assert system.splitlines()[0] == "ROLE: planner"
    assert "forward raised RuntimeError: shape mismatch" in user
    assert "digest of #7" in user
    assert len(proposer.last_hits) == 2
    for hit in proposer.last_hits:
        assert f"[{hit.entry.id}] {hit.entry.title}" in user
    assert [(r["agent"], r["outcome"], r["experiment_id"]) for r in ledger.rows] == [("planner", "ok", 41)]


def test_planner_queries_cognition_with_the_parent_weaknesses(llm):
    server, client, _ = llm
    spy = SpyCognition([])
    server.enqueue(json.dumps({"name": "X", "motivation": "m", "code": NEW_CODE}))
    LLMProposer(client, cognition=spy, experience=lambda _: "digest: gates help", k=3).propose(parent_ctx(), random.Random(0))
    (query, k), = spy.queries
    assert "digest: gates help" in query and "forgets old associations" in query and k == 3


def test_planner_invalid_reply_raises_after_one_repair(llm):
    server, client, ledger = llm
    server.enqueue("I would rather chat about the weather.")
    server.enqueue(json.dumps({"name": "X", "motivation": "m"}))
    with pytest.raises(LLMInvalid):
        LLMProposer(client).propose(parent_ctx(), random.Random(0))
    assert len(server.requests) == 2
    assert [r["outcome"] for r in ledger.rows] == ["invalid", "invalid"]


def test_novelty_judge_reads_the_similar_motivations(llm):
    server, client, _ = llm
    server.enqueue(json.dumps({"repeated": True, "reason": "same as #3"}))
    verdict = judge_novelty(client, "double beta", [(3, "beta times two"), (5, "a decay gate")])
    assert verdict.repeated and verdict.reason == "same as #3"
    system, user = prompts(server)
    assert system.startswith("ROLE: novelty") and "#3: beta times two" in user and "#5: a decay gate" in user


def test_novelty_judge_makes_no_call_when_nothing_is_similar(llm):
    server, client, _ = llm
    assert judge_novelty(client, "anything", []).repeated is False
    assert server.requests == []


def test_diversifier_asks_for_an_orthogonal_idea(llm):
    server, client, _ = llm
    server.enqueue(json.dumps({"name": "ConvQK", "motivation": "Different part.", "code": NEW_CODE}))
    rejected = Proposal(name="DoubleBeta", motivation="beta times two", code=NEW_CODE, origin="llm")
    proposal = diversify(client, parent_ctx(), rejected, "repeats #3", experiment_id=9)
    assert proposal.name == "ConvQK" and proposal.origin == "llm"
    system, user = prompts(server)
    assert system.startswith("ROLE: diversifier") and "ORTHOGONAL" in system
    assert "DoubleBeta" in user and "repeats #3" in user


def test_reviewer_returns_issues_and_a_fenced_fix_unfenced(llm):
    server, client, ledger = llm
    fix = f"```python\n{NEW_CODE}```"
    server.enqueue(json.dumps({"ok": False, "issues": ["builds an L x L mask"], "fixed_code": fix}))
    review = review_code(client, Proposal(name="A", motivation="m", code=CODE), experiment_id=3)
    assert not review.ok and review.issues == ["builds an L x L mask"] and review.fixed_code == NEW_CODE
    system, user = prompts(server)
    assert system.startswith("ROLE: reviewer") and "Hidden quadratic cost" in system and "class DeltaNet" in user
    assert ledger.rows[0]["agent"] == "reviewer"


def test_debugger_sees_the_failure_meaning_and_only_the_log_tail(llm):
    server, client, _ = llm
    server.enqueue(json.dumps({"diagnosis": "cumsum over the whole sequence", "code": NEW_CODE}))
    log = "\n".join(f"frame {i}" for i in range(1000)) + "\nValueError: future leak"
    out = debug_code(client, CODE, FailureKind.leak, log, attempt=2, architecture_id=12)
    assert out.code == NEW_CODE and out.diagnosis.startswith("cumsum")
    system, user = prompts(server)
    assert system.startswith("ROLE: debugger")
    assert "leak (repair attempt 2)" in user and "Causality probe" in user
    assert "ValueError: future leak" in user and "frame 5\n" not in user


def test_analyst_then_cognition_on_its_shortcomings(llm):
    server, client, ledger = llm
    server.enqueue(json.dumps(ANALYSIS))
    spy = SpyCognition(CognitionBase.load(backend="bm25").search("state saturates", 2))
    cand = ArchSummary(id=8, name="DoubleBeta", code=NEW_CODE, val_loss=3.1, benchmark=0.41, fitness=0.7)
    parent = ArchSummary(id=7, name="DeltaNet", code=CODE, val_loss=3.2, benchmark=0.4, fitness=0.5)
    out, hits = analyze_with_cognition(
        client, spy, k=2, candidate=cand, baseline_ref=REF, parent=parent, motivation="beta times two",
        experiment_id=5,
    )
    assert out.synthesis == "Keep it." and hits == spy.hits
    assert spy.queries == [(ANALYSIS["shortcomings"], 2)]
    system, user = prompts(server)
    assert system.startswith("ROLE: analyst") and "beta times two" in user
    assert "+        beta = 2 * self.beta_proj" in user  # the diff from the parent
    assert '"z_val_loss": -5.0' in user  # numbers computed by the statistical analyst
    assert (ledger.rows[0]["experiment_id"], ledger.rows[0]["architecture_id"]) == (5, 8)
    assert f"[{hits[0].entry.id}]" in render_analysis(out, hits)


def test_summarizer_returns_the_digest(llm):
    server, client, _ = llm
    server.enqueue(json.dumps({"digest": "  Doubling beta helped by 5 sigma.  "}))
    hits = CognitionBase.load(backend="bm25").search("state saturates", 1)
    digest = summarize(client, "## Synthesis\nKeep it.", hits, architecture_id=8)
    assert digest == "Doubling beta helped by 5 sigma."
    system, user = prompts(server)
    assert system.startswith("ROLE: summarizer") and "Keep it." in user and f"[{hits[0].entry.id}]" in user


def test_judge_scores_on_the_anchored_rubric(llm):
    server, client, _ = llm
    server.enqueue(json.dumps(SCORES))
    out = judge(client, NEW_CODE, {"val_loss": 3.1, "benchmark": 0.41}, REF, reference_code="class Strong: pass")
    assert out.normalized() == pytest.approx(0.65)
    system, user = prompts(server)
    assert system.startswith("ROLE: judge") and "5/10 is the study's baseline" in system
    assert "val_loss: candidate 3.1000, baseline 3.2000 (-3.1% lower is better)" in user
    assert "class Strong: pass" in user


def test_a_responder_can_route_every_agent_by_its_role_line(llm):
    server, client, _ = llm
    replies = {
        "planner": {"name": "A", "motivation": "m", "code": NEW_CODE},
        "reviewer": {"ok": True, "issues": [], "fixed_code": None},
        "judge": SCORES,
    }
    server.responder = lambda request, api: json.dumps(replies[prompt_text(request, api)[0].splitlines()[0][6:]])
    proposal = LLMProposer(client).propose(parent_ctx(), random.Random(0))
    assert review_code(client, proposal).ok
    assert judge(client, proposal.code, {"val_loss": 3.2}, REF).normalized() == pytest.approx(0.65)
