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


def _reserve(db, tokens: int, budget: int):
    return db.ledger.reserve(agent="planner", provider="openai", model="m", prompt={"system": "s", "user": "u"},
                             tokens_in=tokens // 2, tokens_out=tokens - tokens // 2, cost_usd=None,
                             budget_tokens=budget)


def test_reservations_from_concurrent_writers_never_exceed_the_budget(db, study_url):
    """Twenty threads, each with its own connection to the study (as separate drivers), race for a
    budget of five worst cases: exactly five reservations are taken. Settling one with its real
    usage frees the difference, and what is spent never passes the budget."""
    import threading

    from archscout.store import open_study_db

    budget, worst = 1000, 200
    barrier = threading.Barrier(20)
    taken: list[int] = []

    def one() -> None:
        own = open_study_db(study_url)
        try:
            barrier.wait()
            call_id, held = _reserve(own, worst, budget)
            if call_id is not None:
                taken.append(call_id)
        finally:
            own.close()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 5
    held = db.ledger.totals(reserved=True)
    assert held["tokens_in"] + held["tokens_out"] == budget
    assert db.ledger.totals()["calls"] == 0  # nothing is spent until a call settles
    assert _reserve(db, worst, budget)[0] is None
    db.ledger.settle(taken[0], response="{}", tokens_in=30, tokens_out=20, latency_s=0.1, cost_usd=None, outcome="ok")
    assert db.ledger.totals() == {"calls": 1, "tokens_in": 30, "tokens_out": 20, "cost_usd": 0.0}
    assert _reserve(db, 150, budget)[0] is not None  # 4 x 200 + 50 + 150 = the budget, exactly
    assert _reserve(db, 1, budget)[0] is None
    [settled] = [c for c in db.ledger.calls() if c.id == taken[0]]
    assert settled.outcome == "ok" and settled.response == "{}"
    with pytest.raises(ValueError, match="not a reservation"):
        db.ledger.settle(taken[0], response="{}", tokens_in=1, tokens_out=1, latency_s=0.1, cost_usd=None,
                         outcome="ok")


def test_a_dollar_budget_is_reserved_like_tokens(db):
    args = dict(agent="judge", provider="openai", model="m", prompt={"system": "s", "user": "u"}, tokens_in=10,
                tokens_out=10, budget_usd=0.05)
    first, _ = db.ledger.reserve(**args, cost_usd=0.03)
    assert first is not None
    refused, held = db.ledger.reserve(**args, cost_usd=0.03)
    assert refused is None and held["cost_usd"] == pytest.approx(0.03)
    # an unpriced call has no dollar worst case: only a token budget can hold it back
    assert db.ledger.reserve(**args, cost_usd=None)[0] is not None
