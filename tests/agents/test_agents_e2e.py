"""Each agent end to end: real prompts, the real LLMClient and OpenAI SDK, a local scripted server,
the study database's real ledger and the real Cognition base (BM25 backend)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest

from archscout.analyze.fitness import BaselineRef
from archscout.agents.judge import judge
from archscout.agents.analyst import (
    analyze_with_cognition,
    render_analysis,
    summarize,
)
from archscout.cognition.index import CognitionBase
from archscout.agents.debugger import debug_code
from archscout.propose.base import Proposal, ProposalContext
from archscout.agents.reviewer import review_code
from archscout.agents.base import LLMConfig, LLMInvalid
from archscout.agents.client import LLMClient
from archscout.agents.scripted import ScriptedServer, prompt_text
from archscout.agents.planner import LLMProposer, diversify, judge_novelty, weakness_query
from archscout.records import ArchView, FailureKind
from archscout.space import baseline_path
from archscout.store.db import StudyDB, open_study_db
from archscout.store.ledger import Ledger

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
PARENT_ANALYSIS = "Recall is weak: the state saturates and forgets old associations."


@dataclass
class Env:
    server: ScriptedServer
    client: LLMClient
    db: StudyDB

    @property
    def ledger(self) -> Ledger:
        return self.db.ledger

    def experiment(self) -> int:
        return self.db.experiments.start(proposer="llm").id

    def architecture(self, code: str, name: str) -> int:
        return self.db.add_architecture(code, name=name, origin="llm", norm_hash=None, motivation="m")


@pytest.fixture(scope="module")
def base() -> CognitionBase:
    return CognitionBase.load(backend="bm25")


@pytest.fixture
def llm(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted")
    db = open_study_db(tmp_path)
    try:
        with ScriptedServer() as server:
            client = LLMClient(LLMConfig(base_url=server.openai_base_url, max_retries=0, timeout_s=10), ledger=db.ledger)
            yield Env(server, client, db)
    finally:
        db.close()


def prompts(server, i=-1) -> tuple[str, str]:
    return prompt_text(server.requests[i], "openai")


def ids(hits) -> list[str]:
    return [h.entry.id for h in hits]


def assert_entries_shown(hits, user: str) -> None:
    assert hits, "expected the real base to retrieve something for this query"
    for hit in hits:
        assert f"[{hit.entry.id}] {hit.entry.title}" in user


def parent_ctx(feedback: str = "") -> ProposalContext:
    parent = ArchView(id=7, name="DeltaNet", code=CODE, motivation="the seed", fitness=0.5, val_loss=3.2,
                      analysis=PARENT_ANALYSIS)
    return ProposalContext(parent=parent, references=[parent], baseline=REF.model_dump(), feedback=feedback,
                           attempt=1 if feedback else 0, experiment_seq=4)


def test_planner_proposes_through_the_client_with_feedback_and_cognition(llm, base):
    exp_id = llm.experiment()
    proposer = LLMProposer(llm.client, cognition=base, experience=lambda arch_id: f"digest of #{arch_id}", k=2)
    proposer.experiment_id = exp_id
    llm.server.enqueue(json.dumps({"name": "DoubleBeta", "motivation": "Faster overwriting.", "code": NEW_CODE}))
    ctx = parent_ctx("forward raised RuntimeError: shape mismatch")
    proposal = proposer.propose(ctx, random.Random(0))

    assert proposal == Proposal(name="DoubleBeta", motivation="Faster overwriting.", code=NEW_CODE, origin="llm")
    system, user = prompts(llm.server)
    assert system.splitlines()[0] == "ROLE: planner"
    assert "forward raised RuntimeError: shape mismatch" in user
    assert "digest of #7" in user
    expected = base.search(weakness_query(ctx.parent, "digest of #7"), 2)
    assert len(expected) == 2 and ids(proposer.last_hits) == ids(expected)
    assert_entries_shown(expected, user)
    calls = llm.ledger.calls(experiment_id=exp_id)
    assert [(c.agent, c.outcome, c.experiment_id) for c in calls] == [("planner", "ok", exp_id)]
    assert calls[0].prompt["user"] == user and system.startswith(calls[0].prompt["system"])  # sent: + schema
    assert json.loads(calls[0].response)["name"] == "DoubleBeta"


def test_planner_queries_cognition_with_the_parent_weaknesses(llm, base):
    digest = "digest: fails parity and modular counting"
    llm.server.enqueue(json.dumps({"name": "X", "motivation": "m", "code": NEW_CODE}))
    proposer = LLMProposer(llm.client, cognition=base, experience=lambda _: digest, k=3)
    proposer.propose(parent_ctx(), random.Random(0))
    _, user = prompts(llm.server)

    # the query is the digest and the parent's analysis together: the hits are those of that query,
    # and include the best match of each part on its own
    expected = base.search(weakness_query(parent_ctx().parent, digest), 3)
    assert ids(proposer.last_hits) == ids(expected) and len(expected) == 3
    assert base.search(digest, 1)[0].entry.id in ids(expected)
    assert base.search(PARENT_ANALYSIS, 1)[0].entry.id in ids(expected)
    assert_entries_shown(expected, user)
    assert digest in user


def test_planner_without_cognition_shows_no_entries(llm, base):
    llm.server.enqueue(json.dumps({"name": "X", "motivation": "m", "code": NEW_CODE}))
    llm.server.enqueue(json.dumps({"name": "Y", "motivation": "m", "code": NEW_CODE}))
    LLMProposer(llm.client, cognition=None).propose(parent_ctx(), random.Random(0))
    proposer = LLMProposer(llm.client, cognition=base, k=0)
    proposer.propose(parent_ctx(), random.Random(0))
    assert proposer.last_hits == []
    for i in (0, 1):
        _, user = prompts(llm.server, i)
        assert "(no entries retrieved)" in user
        assert not any(f"[{hit.entry.id}]" in user for hit in base.search(PARENT_ANALYSIS, 3))


def test_planner_invalid_reply_raises_after_one_repair(llm):
    llm.server.enqueue("I would rather chat about the weather.")
    llm.server.enqueue(json.dumps({"name": "X", "motivation": "m"}))
    with pytest.raises(LLMInvalid):
        LLMProposer(llm.client).propose(parent_ctx(), random.Random(0))
    assert len(llm.server.requests) == 2
    calls = llm.ledger.calls()
    assert [(c.agent, c.outcome) for c in calls] == [("planner", "invalid"), ("planner", "invalid")]
    assert calls[0].response == "I would rather chat about the weather."


def test_novelty_judge_reads_the_similar_motivations(llm):
    llm.server.enqueue(json.dumps({"repeated": True, "reason": "same as #3"}))
    verdict = judge_novelty(llm.client, "double beta", [(3, "beta times two"), (5, "a decay gate")])
    assert verdict.repeated and verdict.reason == "same as #3"
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: novelty") and "#3: beta times two" in user and "#5: a decay gate" in user


def test_novelty_judge_makes_no_call_when_nothing_is_similar(llm):
    assert judge_novelty(llm.client, "anything", []).repeated is False
    assert llm.server.requests == []
    assert llm.ledger.calls() == []


def test_diversifier_asks_for_an_orthogonal_idea(llm):
    exp_id = llm.experiment()
    llm.server.enqueue(json.dumps({"name": "ConvQK", "motivation": "Different part.", "code": NEW_CODE}))
    rejected = Proposal(name="DoubleBeta", motivation="beta times two", code=NEW_CODE, origin="llm")
    proposal = diversify(llm.client, parent_ctx(), rejected, "repeats #3", experiment_id=exp_id)
    assert proposal.name == "ConvQK" and proposal.origin == "llm"
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: diversifier") and "ORTHOGONAL" in system
    assert "DoubleBeta" in user and "repeats #3" in user
    assert [(c.agent, c.outcome) for c in llm.ledger.calls(experiment_id=exp_id)] == [("diversifier", "ok")]


def test_reviewer_returns_issues_and_a_fenced_fix_unfenced(llm):
    exp_id = llm.experiment()
    fix = f"```python\n{NEW_CODE}```"
    llm.server.enqueue(json.dumps({"ok": False, "issues": ["builds an L x L mask"], "fixed_code": fix}))
    review = review_code(llm.client, Proposal(name="A", motivation="m", code=CODE), experiment_id=exp_id)
    assert not review.ok and review.issues == ["builds an L x L mask"] and review.fixed_code == NEW_CODE
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: reviewer") and "Hidden quadratic cost" in system and "class DeltaNet" in user
    (call,) = llm.ledger.calls(experiment_id=exp_id)
    assert (call.agent, call.outcome, call.experiment_id) == ("reviewer", "ok", exp_id)


def test_debugger_sees_the_failure_meaning_and_only_the_log_tail(llm):
    arch_id = llm.architecture(CODE, "DeltaNet")
    llm.server.enqueue(json.dumps({"diagnosis": "cumsum over the whole sequence", "code": NEW_CODE}))
    log = "\n".join(f"frame {i}" for i in range(1000)) + "\nValueError: future leak"
    out = debug_code(llm.client, CODE, FailureKind.leak, log, attempt=2, architecture_id=arch_id)
    assert out.code == NEW_CODE and out.diagnosis.startswith("cumsum")
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: debugger")
    assert "leak (repair attempt 2)" in user and "Causality probe" in user
    assert "ValueError: future leak" in user and "frame 5\n" not in user
    (call,) = llm.ledger.calls(architecture_id=arch_id)
    assert (call.agent, call.architecture_id) == ("debugger", arch_id)


def test_analyst_then_cognition_on_its_shortcomings(llm, base):
    exp_id = llm.experiment()
    parent_id = llm.architecture(CODE, "DeltaNet")
    cand_id = llm.architecture(NEW_CODE, "DoubleBeta")
    llm.server.enqueue(json.dumps(ANALYSIS))
    cand = ArchView(id=cand_id, name="DoubleBeta", code=NEW_CODE, val_loss=3.1, benchmark=0.41, fitness=0.7)
    parent = ArchView(id=parent_id, name="DeltaNet", code=CODE, val_loss=3.2, benchmark=0.4, fitness=0.5)
    out, hits = analyze_with_cognition(
        llm.client, base, k=2, candidate=cand, baseline_ref=REF, parent=parent, motivation="beta times two",
        experiment_id=exp_id,
    )
    assert out.synthesis == "Keep it."
    # retrieval runs on the analysis' own shortcomings, with the caller's k
    expected = base.search(ANALYSIS["shortcomings"], 2)
    assert len(hits) == 2 and ids(hits) == ids(expected)
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: analyst") and "beta times two" in user
    assert "+        beta = 2 * self.beta_proj" in user  # the diff from the parent
    assert '"z_val_loss": -5.0' in user  # numbers computed by the statistical analyst
    (call,) = llm.ledger.calls(experiment_id=exp_id)
    assert (call.agent, call.experiment_id, call.architecture_id) == ("analyst", exp_id, cand_id)
    assert llm.ledger.calls(architecture_id=cand_id) == [call]
    rendered = render_analysis(out, hits)
    for hit in hits:
        assert f"[{hit.entry.id}] {hit.entry.title}" in rendered

    llm.server.enqueue(json.dumps(ANALYSIS))
    _, none = analyze_with_cognition(llm.client, None, k=2, candidate=cand, baseline_ref=REF, parent=parent)
    assert none == [] and "## Retrieved knowledge" not in render_analysis(out, none)


def test_summarizer_returns_the_digest(llm, base):
    arch_id = llm.architecture(NEW_CODE, "DoubleBeta")
    llm.server.enqueue(json.dumps({"digest": "  Doubling beta helped by 5 sigma.  "}))
    hits = base.search(ANALYSIS["shortcomings"], 1)
    digest = summarize(llm.client, "## Synthesis\nKeep it.", hits, architecture_id=arch_id)
    assert digest == "Doubling beta helped by 5 sigma."
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: summarizer") and "Keep it." in user
    assert_entries_shown(hits, user)
    (call,) = llm.ledger.calls(architecture_id=arch_id)
    assert (call.agent, call.outcome) == ("summarizer", "ok")


def test_judge_scores_on_the_anchored_rubric(llm):
    llm.server.enqueue(json.dumps(SCORES))
    out = judge(llm.client, NEW_CODE, {"val_loss": 3.1, "benchmark": 0.41}, REF, reference_code="class Strong: pass")
    assert out.normalized() == pytest.approx(0.65)
    system, user = prompts(llm.server)
    assert system.startswith("ROLE: judge") and "5/10 is the study's baseline" in system
    assert "val_loss: candidate 3.1000, baseline 3.2000 (-3.1% lower is better)" in user
    assert "class Strong: pass" in user


def test_a_responder_can_route_every_agent_by_its_role_line(llm):
    replies = {
        "planner": {"name": "A", "motivation": "m", "code": NEW_CODE},
        "reviewer": {"ok": True, "issues": [], "fixed_code": None},
        "judge": SCORES,
    }
    llm.server.responder = lambda request, api: json.dumps(replies[prompt_text(request, api)[0].splitlines()[0][6:]])
    proposal = LLMProposer(llm.client).propose(parent_ctx(), random.Random(0))
    assert review_code(llm.client, proposal).ok
    assert judge(llm.client, proposal.code, {"val_loss": 3.2}, REF).normalized() == pytest.approx(0.65)
    assert [c.agent for c in llm.ledger.calls()] == ["planner", "reviewer", "judge"]
