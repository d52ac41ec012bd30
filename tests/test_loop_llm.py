"""`archscout run --proposer llm` end to end: the real OpenAI SDK and LLMClient over HTTP to the
scripted server, real sandboxed training at the smoke preset, a real SQLite study.

The scripted model answers by role: the planner writes three files in turn (the second trains into
an exception that the probes cannot see) and the debugger repairs it; the third never validates and
the fourth is first invalid Python and its judge never answers in JSON; the reviewer, novelty judge,
judge, analyst and summarizer answer plainly. A first run with a tiny token budget stops cleanly
mid-study; the resumed run completes the four experiments with the ledger, traces and retrieved
cognition stored.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from archscout.cli import app
from archscout.agents.scripted import ScriptedServer, prompt_text
from archscout.propose.novelty import normalized_hash
from archscout.space import baseline_path
from archscout.study import open_study

BASE = baseline_path("deltanet").read_text()
BETA = "beta = self.beta_proj(hidden_states).sigmoid()"
GOOD = [BASE.replace(BETA, BETA.replace(".sigmoid()", f".sigmoid() * {s}")) for s in ("0.9", "0.8", "0.7")]
# batch 16 only occurs in smoke training (MQAR); the probes use batch <= 3, so this passes them
BUGGY = GOOD[1].replace("        b, t, _ = hidden_states.shape\n", "        b, t, _ = hidden_states.shape\n"
                        "        if b >= 8:\n            raise RuntimeError('scripted bug: big batches unsupported')\n")
NO_JSON = "I would rather describe the idea in prose."
SYNTAX_ERROR = GOOD[2].replace("def forward(", "def forward(:", 1)
# experiment 1 trains; 2 fails training and is debugged; 3 never validates (llm_invalid); 4 first
# comes back as invalid Python, then (told the syntax error) as a good file
FILES = [GOOD[0], BUGGY, NO_JSON, SYNTAX_ERROR, GOOD[2]]
ANALYSIS = {
    "design_evaluation": "Scales the write strength.", "results_analysis": "Loss moved within noise.",
    "expectation_vs_reality": "Expected a small gain.", "theoretical_explanation": "Smaller beta forgets less.",
    "synthesis": "Try a learned scale.", "shortcomings": "recall collapses as more key-value pairs compete for the state",
}
DIMS = ("performance", "innovation", "complexity", "implementation_quality")


class Model:
    """The scripted researcher: one answer per role, the planner's files in order."""

    def __init__(self):
        self.planned = 0
        self.roles: list[str] = []
        self.planner_prompts: list[str] = []
        self.judged = 0

    def __call__(self, request: dict, api: str):
        system, user = prompt_text(request, api)
        role = re.search(r"ROLE: (\w+)", system).group(1)
        self.roles.append(role)
        if role == "check":
            return json.dumps({"ok": True})
        if role == "planner":
            if "Your previous reply was" not in user:  # a repair round answers the same plan again
                self.planned += 1
                self.planner_prompts.append(user)
            code = FILES[min(self.planned, len(FILES)) - 1]
            if code == NO_JSON:
                return code
            return json.dumps({"name": f"ScaledBeta{self.planned}", "code": code,
                               "motivation": f"idea {self.planned}: scale the delta-rule write strength"})
        if role == "reviewer":
            return json.dumps({"ok": True, "issues": []})
        if role == "novelty":
            return json.dumps({"repeated": False, "reason": "different scale"})
        if role == "debugger":
            assert "scripted bug" in user  # the log tail reached the debugger
            return json.dumps({"diagnosis": "drop the batch-size guard", "code": GOOD[1]})
        if role == "judge":
            if "Your previous reply was" not in user:
                self.judged += 1
            if self.judged == 3:  # the last experiment's judge never answers in JSON
                return "A solid design; I would rather not put numbers on it."
            return json.dumps({d: {"score": 6, "rationale": "modest change"} for d in DIMS})
        if role == "analyst":
            return json.dumps(ANALYSIS)
        if role == "summarizer":
            return json.dumps({"digest": "scaling beta alone moves little; recall is the weakness"})
        raise AssertionError(f"unexpected role {role}")


@pytest.mark.slow
def test_llm_study_runs_debugs_stops_at_budget_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted")
    model = Model()
    folder = tmp_path / "study"
    runner = CliRunner()
    with ScriptedServer(responder=model) as server:
        args = ["run", "--study", str(folder), "--proposer", "llm", "--preset", "smoke", "--budget", "4",
                "--set", f"llm.base_url={server.openai_base_url}", "--set", "llm.max_retries=0",
                "--set", "baseline_seeds=2", "--set", "novelty.backend=bm25",
                "--set", 'llm.prices.gpt-4o-mini={input = 0.15, output = 0.6}']
        # a budget the preflight call alone uses up: the study stops cleanly before the planner
        first = runner.invoke(app, [*args, "--set", "llm.budget_tokens=5"])
        assert first.exit_code == 0, first.output
        assert "stopped before the budget" in first.output and "budget" in first.output
        assert "planner" not in model.roles

        second = runner.invoke(app, [*args, "--set", "llm.budget_tokens=10000000"])
        assert second.exit_code == 0, second.output

    handle = open_study(folder, create=False)
    try:
        db = handle.db
        exps = [db.experiments.by_seq(i) for i in (1, 2, 3, 4)]
        assert [e.state for e in exps] == ["done", "done", "failed", "done"], [(e.state, e.failure_message) for e in exps]
        assert exps[2].failure_reason == "llm_invalid" and "after one repair" in exps[2].failure_message
        # the invalid Python went back to the planner with the syntax error, and the loop went on
        assert "syntax error at line" in model.planner_prompts[-1]
        exps = [exps[0], exps[1], exps[3]]
        assert all(e.cost_usd and e.cost_usd > 0 for e in exps)
        # experiment 2: the buggy file failed training and stays on record; the fix was trained
        fixed = db.architecture(exps[1].architecture_id)
        assert fixed.code == GOOD[1] and fixed.name.endswith("-fix1")
        buggy = db.architectures_by_norm_hash(normalized_hash(BUGGY))[0]
        failed_runs = db.runs_for(buggy.id, "explore", "smoke")
        assert [r.status for r in failed_runs] == ["failed"]
        notes = [e.note for e in db.experiments.events(exps[1].id)]
        assert any(n.startswith("debug attempt 1") for n in notes)
        assert model.roles.count("debugger") == 1
        # each stored probe report is the final file's: the fix was probed, and recorded, in `checked`
        assert all(e.probe_report["candidate_hash"] == db.architecture(e.architecture_id).code_hash for e in exps)
        for exp in exps:
            arch_id = exp.architecture_id
            kinds = [a.kind for a in db.analyses_for(arch_id)]
            assert {"statistical", "llm", "experience", "judge"} <= set(kinds)
            llm = db.analyses_for(arch_id, "llm")[-1]
            assert llm.numbers["cognition"] and llm.numbers["shortcomings"] == ANALYSIS["shortcomings"]
            # a judge that never validated is recorded as missing, never filled with a default
            judge_kind = db.score(arch_id, "explore", "smoke").components["judge_kind"]
            assert judge_kind == ("missing" if exp is exps[-1] else "llm")
            judged = db.analyses_for(arch_id, "judge")[-1]
            assert judged.text.startswith("judge failed") == (exp is exps[-1])
            # the trace of an architecture is every call of the experiment that produced it
            trace = {c.agent for c in db.ledger.calls(experiment_id=exp.id)}
            assert {"planner", "reviewer", "novelty", "judge", "analyst", "summarizer"} <= trace
        assert [c.agent for c in db.ledger.calls(architecture_id=buggy.id)].count("debugger") == 1
        spend = db.ledger.spend_by_agent()
        assert spend["planner"]["calls"] == 6 and spend["planner"]["failed"] == 2
        assert spend["debugger"]["calls"] == 1
        assert db.ledger.totals()["cost_usd"] > 0
    finally:
        handle.close()
    status = runner.invoke(app, ["status", "--study", str(folder)])
    assert status.exit_code == 0 and "LLM spend per agent" in status.output and "debugger" in status.output
    shown = runner.invoke(app, ["show", str(fixed.id), "--study", str(folder), "--trace"])
    assert shown.exit_code == 0
    assert "ROLE: planner" in shown.output and "ROLE: debugger" in shown.output and "scripted bug" in shown.output
