"""The LLM ledger: rows as written, totals and spend per agent, budgets' inputs, and traces."""

from __future__ import annotations

import pytest


def call(db, agent, *, exp=None, arch=None, tin=10, tout=5, cost=0.01, outcome="ok"):
    return db.ledger.add(agent=agent, provider="openai", model="m", prompt={"system": "s", "user": f"u {agent}"},
                         response="{}", tokens_in=tin, tokens_out=tout, latency_s=0.5, cost_usd=cost,
                         outcome=outcome, experiment_id=exp, architecture_id=arch)


def test_totals_and_spend_per_agent_sum_what_was_written(db):
    call(db, "planner", tin=100, tout=50, cost=0.02)
    call(db, "planner", tin=10, tout=0, cost=None, outcome="error")
    call(db, "judge", tin=7, tout=3, cost=0.001, outcome="invalid")
    assert db.ledger.totals() == {"calls": 3, "tokens_in": 117, "tokens_out": 53, "cost_usd": pytest.approx(0.021)}
    spend = db.ledger.spend_by_agent()
    assert spend["planner"] == {"calls": 2, "tokens_in": 110, "tokens_out": 50, "cost_usd": pytest.approx(0.02),
                                "failed": 1}
    assert spend["judge"]["failed"] == 1 and list(spend) == ["judge", "planner"]


def test_an_unknown_outcome_is_refused(db):
    with pytest.raises(ValueError, match="unknown LLM call outcome"):
        call(db, "planner", outcome="maybe")


def test_calls_before_the_file_existed_join_its_trace(db, add_arch):
    exp = db.experiments.start(proposer="llm")
    other = db.experiments.start(proposer="llm")
    call(db, "planner", exp=exp.id)
    call(db, "reviewer", exp=exp.id)
    call(db, "planner", exp=other.id)
    first = add_arch(db)
    db.ledger.attach_architecture(exp.id, first)
    fixed = add_arch(db)
    call(db, "debugger", exp=exp.id, arch=first)
    call(db, "judge", exp=exp.id, arch=fixed)
    assert [c.agent for c in db.ledger.calls(architecture_id=first)] == ["planner", "reviewer", "debugger"]
    # the trace of the debugged file is the whole experiment, oldest first
    assert [c.agent for c in db.ledger.trace(fixed, exp.id)] == ["planner", "reviewer", "debugger", "judge"]
    assert db.ledger.experiment_cost(exp.id) == pytest.approx(0.04)
