"""Prompt templates and agent output models, without any LLM call."""

from __future__ import annotations

import jinja2
import pytest
from pydantic import ValidationError

from archscout.analyze.fitness import BaselineRef
from archscout.agents.judge import Dimension, JudgeOut, result_rows
from archscout.agents.analyst import AnalystOut, code_diff, render_analysis
from archscout.propose.base import Proposal, ProposalContext
from archscout.records import ArchView
from archscout.agents.reviewer import ReviewOut, apply_review
from archscout.agents.base import AGENTS
from archscout.agents.planner import PlannerOut, _context, retrieve, weakness_query
from archscout.agents.prompts import (
    excerpt,
    render,
    render_pair,
    strip_fence,
    tail,
    templates,
)
from archscout.space import baseline_path

CODE = baseline_path("deltanet").read_text()
REF = BaselineRef(n=3, val_loss_mean=3.2, val_loss_std=0.02, benchmark_mean=0.4, benchmark_std=0.01)
CODE_AGENTS = ("planner", "diversifier", "reviewer", "debugger")
CONTRACT_LINES = (
    "__init__(self, d_model, num_heads, layer_idx=None, **kwargs)",
    "forward(self, hidden_states, attention_mask=None, past_key_values=None,",
    "(out, None, past_key_values)",
    "Causal.",
    "Sub-quadratic in L.",
    "Batch independent.",
    "Name it `DeltaNet`",
)


class Entry:
    id, title, trigger, background = "gla-gate", "Data-dependent gating", "state saturates", "bg"
    algorithm, implementation, source = "gate the state", "use a sigmoid", "Yang et al. 2024"


def contexts() -> dict[str, dict]:
    parent = ArchView(id=7, name="DeltaNet", code=CODE, motivation="the seed", fitness=0.5, val_loss=3.21,
                      analysis="Recall is weak: the state saturates.")
    ctx = ProposalContext(parent=parent, references=[parent], baseline=REF.model_dump(),
                          feedback="syntax error at line 3: invalid syntax", attempt=1)
    planner = _context(ctx, "digest: gating helped", [Entry()])
    summary = ArchView(id=8, name="GatedX", code=CODE + "\n# gate\n", val_loss=3.1, benchmark=0.42, fitness=0.6)
    return {
        "planner": planner,
        # the diversifier does not see planner feedback: the rejection reason is its feedback
        "diversifier": {**{k: v for k, v in planner.items() if k not in ("feedback", "attempt")}, "rejected": Proposal(name="Old", motivation="same gate", code=CODE),
                        "reason": "repeats #3"},
        "novelty": {"motivation": "add a gate", "similar": [(3, "a gate on the state")]},
        "reviewer": {"proposal": Proposal(name="GatedX", motivation="gate it", code=CODE)},
        "debugger": {"code": CODE, "failure_kind": "leak", "log_tail": "Traceback\nValueError: x",
                     "attempt": 1, "meaning": "reads the future"},
        "analyst": {"candidate": summary, "motivation": "gate it", "baseline": REF.model_dump(),
                    "lineage": [("parent", summary)], "parent_diff": code_diff(CODE, summary.code),
                    "numbers": {"vs_baseline": {"d_val_loss": -0.1}}, "cognition": []},
        "summarizer": {"analysis_text": "## Synthesis\nkeep the gate", "cognition": []},
        "judge": {"candidate_code": CODE, "rows": result_rows(summary, REF), "baseline": REF.model_dump(),
                  "reference_code": ""},
    }


def test_every_agent_ships_a_system_and_a_user_template():
    assert set(templates()) == set(AGENTS) - {"check"}


@pytest.mark.parametrize("agent", sorted(contexts()))
def test_system_prompt_starts_with_the_role_line(agent):
    system, user = render_pair(agent, **contexts()[agent])
    assert system.splitlines()[0] == f"ROLE: {agent}"
    assert "JSON" in system and user.strip()


@pytest.mark.parametrize("agent", CODE_AGENTS)
def test_code_writing_and_reading_agents_state_the_contract(agent):
    system, _ = render_pair(agent, **contexts()[agent])
    for line in CONTRACT_LINES:
        assert line in system, line


@pytest.mark.parametrize("agent", sorted(contexts()))
def test_a_missing_variable_fails_instead_of_leaving_a_hole(agent):
    ctx = contexts()[agent]
    for key in ctx:
        partial = {k: v for k, v in ctx.items() if k != key}
        with pytest.raises(jinja2.UndefinedError):
            render_pair(agent, **partial)


def test_render_accepts_the_name_with_or_without_suffix():
    ctx = contexts()["novelty"]
    assert render("novelty.user", **ctx) == render("novelty.user.j2", **ctx)


def test_planner_prompt_carries_parent_numbers_feedback_experience_and_cognition():
    _, user = render_pair("planner", **contexts()["planner"])
    assert "val loss 3.2100 (+0.0100, +0.5σ vs baseline)" in user
    assert "syntax error at line 3" in user
    assert "digest: gating helped" in user
    assert "[gla-gate] Data-dependent gating (Yang et al. 2024)" in user
    assert "class DeltaNet(nn.Module)" in user


def test_planner_prompt_without_parent_or_baseline_still_renders():
    ctx = _context(ProposalContext(parent=None), "", [])
    _, user = render_pair("planner", **ctx)
    assert "no parent" in user and "not measured yet" in user and "(no entries retrieved)" in user


def test_excerpt_keeps_head_and_tail_within_bounds():
    text = "HEAD" + "x" * 50_000 + "TAIL"
    out = excerpt(text, 1000)
    assert out.startswith("HEAD") and out.endswith("TAIL") and len(out) < 1100
    assert "characters omitted" in out
    assert excerpt("short", 1000) == "short"


def test_tail_keeps_the_last_lines_of_a_log():
    log = "\n".join(f"line {i}" for i in range(500))
    out = tail(log, max_lines=10)
    assert out.splitlines() == [f"line {i}" for i in range(490, 500)]


def test_strip_fence_removes_a_markdown_fence_only():
    assert strip_fence("```python\nx = 1\n```") == "x = 1\n"
    assert strip_fence("x = 1") == "x = 1\n"


def test_planner_out_cleans_name_and_code():
    out = PlannerOut(name="Gated Delta-Net v2", motivation=" m ", code="```python\nimport torch\n```\n")
    proposal = out.proposal()
    assert proposal.name == "Gated_DeltaNet_v2" and proposal.code == "import torch\n"
    assert proposal.origin == "llm" and proposal.motivation == "m"
    with pytest.raises(ValidationError):
        PlannerOut(name="!!!", motivation="m", code="x")


def test_review_fix_replaces_code_only_when_offered():
    proposal = Proposal(name="A", motivation="m", code="old\n")
    assert apply_review(proposal, ReviewOut(ok=True)) is proposal
    assert ReviewOut(ok=False, issues=["x"], fixed_code="  ").fixed_code is None
    fixed = apply_review(proposal, ReviewOut(ok=False, issues=["L x L mask"], fixed_code="```\nnew\n```"))
    assert fixed.code == "new\n" and "L x L mask" in fixed.motivation


def _judged(*scores: float) -> JudgeOut:
    return JudgeOut(**{d: Dimension(score=s, rationale="r") for d, s in
                       zip(("performance", "innovation", "complexity", "implementation_quality"), scores)})


def test_judge_normalisation_is_the_mean_score_over_ten():
    assert _judged(5, 5, 5, 5).normalized() == 0.5
    assert _judged(10, 10, 10, 10).normalized() == 1.0
    assert _judged(0, 0, 0, 0).normalized() == 0.0
    assert _judged(8, 6, 4, 7).normalized() == pytest.approx(0.625)


def test_judge_scores_outside_the_scale_are_invalid():
    with pytest.raises(ValidationError):
        _judged(11, 5, 5, 5)
    with pytest.raises(ValidationError):
        _judged(-1, 5, 5, 5)


def test_judge_result_rows_compare_with_the_baseline_mean():
    rows = {r["metric"]: r for r in result_rows({"val_loss": 3.04, "benchmark": None}, REF)}
    assert set(rows) == {"val_loss"}
    assert rows["val_loss"]["relative"] == pytest.approx(-0.05)


def test_render_analysis_has_the_five_sections_shortcomings_and_entries():
    out = AnalystOut(design_evaluation="d", results_analysis="r", expectation_vs_reality="e",
                     theoretical_explanation="t", synthesis="s", shortcomings="w")
    text = render_analysis(out, [Entry()])
    for title in ("Design evaluation", "Results analysis", "Expectation vs reality",
                  "Theoretical explanation", "Synthesis", "Open shortcomings", "Retrieved knowledge"):
        assert f"## {title}" in text
    assert "[gla-gate]" in text


def test_no_cognition_query_without_a_parent_base_or_k():
    class Spy:
        def __init__(self):
            self.queries: list[str] = []

        def search(self, query, k=3):
            self.queries.append(query)
            return []

    spy = Spy()
    assert weakness_query(None) == ""
    assert retrieve(spy, "", 3) == [] and retrieve(spy, "q", 0) == [] and retrieve(None, "q", 3) == []
    assert spy.queries == []
