"""The experiment state machine: the valid path, rejected transitions, failure, events, resume."""

from __future__ import annotations

import pytest

from archscout.store import InvalidTransition, NotFoundError
from archscout.store.experiments import STATES, allowed_next


def test_an_experiment_walks_the_whole_path_and_logs_each_step(db, add_arch):
    parent = add_arch(db, origin="baseline")
    exp = db.experiments.start(proposer="offline", parent_id=parent, reference_ids=[parent])
    assert (exp.seq, exp.state, exp.reference_ids) == (1, "sampled", [parent])
    for state in STATES[1:]:
        exp = db.experiments.advance(exp.id, state, note=f"to {state}")
    assert exp.state == "done" and exp.terminal and exp.finished_at is not None
    events = db.experiments.events(exp.id)
    assert [e.state for e in events] == list(STATES)
    assert events[-1].note == "to done"
    assert all(a.at <= b.at for a, b in zip(events, events[1:]))


def test_stage_output_and_state_change_commit_in_one_transaction(db, add_arch):
    exp = db.experiments.start(proposer="llm")
    with db.transaction() as tx:
        arch = add_arch(db, conn=tx)
        db.experiments.advance(exp.id, "proposed", architecture_id=arch, cost_usd=0.01, conn=tx)
    stored = db.experiments.get(exp.id)
    assert (stored.state, stored.architecture_id, stored.cost_usd) == ("proposed", arch, 0.01)

    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            db.experiments.advance(exp.id, "checked", conn=tx)
            raise RuntimeError("killed before the commit")
    assert db.experiments.get(exp.id).state == "proposed"
    assert [e.state for e in db.experiments.events(exp.id)] == ["sampled", "proposed"]


@pytest.mark.parametrize(
    "path, target",
    [
        ([], "checked"),  # skipping a stage
        ([], "sampled"),  # staying put
        (["proposed", "checked"], "proposed"),  # going back
        (list(STATES[1:]), "failed"),  # done is terminal
        (["failed"], "proposed"),  # failed is terminal
        ([], "exploded"),  # no such state
    ],
)
def test_invalid_transitions_are_rejected_and_change_nothing(db, path, target):
    exp = db.experiments.start(proposer="offline")
    for state in path:
        fields = {"failure_reason": "crash"} if state == "failed" else {}
        db.experiments.advance(exp.id, state, **fields)
    before = db.experiments.get(exp.id)
    fields = {"failure_reason": "crash"} if target == "failed" else {}
    with pytest.raises(InvalidTransition, match=f"cannot move from {before.state} to {target}"):
        db.experiments.advance(exp.id, target, **fields)
    assert db.experiments.get(exp.id) == before
    assert len(db.experiments.events(exp.id)) == len(path) + 1


@pytest.mark.parametrize("reached", STATES[:-1])
def test_failed_is_reachable_from_every_non_terminal_state(db, reached):
    exp = db.experiments.start(proposer="offline")
    for state in STATES[1 : STATES.index(reached) + 1]:
        db.experiments.advance(exp.id, state)
    failed = db.experiments.fail(exp.id, "timeout", "ran past 600 s")
    assert failed.state == "failed" and failed.failure_reason == "timeout"
    assert failed.failure_message == "ran past 600 s"
    assert failed.finished_at is not None
    assert db.experiments.events(exp.id)[-1].state == "failed"


def test_failing_needs_a_reason_and_unknown_fields_are_refused(db):
    exp = db.experiments.start(proposer="offline")
    with pytest.raises(ValueError, match="failure_reason"):
        db.experiments.advance(exp.id, "failed")
    with pytest.raises(ValueError, match="fitness"):
        db.experiments.advance(exp.id, "proposed", fitness=1.0)
    with pytest.raises(NotFoundError):
        db.experiments.advance(exp.id + 99, "proposed")


def test_open_experiments_are_what_a_resume_must_finish(db):
    exps = [db.experiments.start(proposer="offline") for _ in range(5)]
    for state in STATES[1:]:
        db.experiments.advance(exps[0].id, state)
    db.experiments.fail(exps[1].id, "leak")
    db.experiments.advance(exps[2].id, "proposed")
    db.experiments.advance(exps[2].id, "checked")
    db.experiments.advance(exps[4].id, "proposed")
    open_ = db.experiments.open_experiments()
    assert [(e.seq, e.state) for e in open_] == [(3, "checked"), (4, "sampled"), (5, "proposed")]


def test_sequence_numbers_and_counts(db):
    assert db.experiments.next_seq() == 1
    exps = [db.experiments.start(proposer="offline") for _ in range(4)]
    assert [e.seq for e in exps] == [1, 2, 3, 4] and db.experiments.next_seq() == 5
    db.experiments.fail(exps[0].id, "leak")
    db.experiments.fail(exps[1].id, "leak")
    db.experiments.fail(exps[2].id, "timeout")
    assert db.experiments.counts_by_state() == {"failed": 3, "sampled": 1}
    assert db.experiments.counts_by_failure() == {"leak": 2, "timeout": 1}
    assert [e.seq for e in db.experiments.recent(2)] == [4, 3]
    assert db.experiments.by_seq(2).id == exps[1].id


def test_allowed_next_lists_one_step_forward_or_failed():
    assert allowed_next("sampled") == ("proposed", "failed")
    assert allowed_next("analyzed") == ("done", "failed")
    assert allowed_next("done") == () and allowed_next("failed") == ()


def test_revise_moves_an_open_experiment_to_a_new_architecture_in_place(db, add_arch):
    first, second = add_arch(db), add_arch(db)
    exp = db.experiments.start(proposer="llm")
    exp = db.experiments.advance(exp.id, "proposed", architecture_id=first)
    exp = db.experiments.revise(exp.id, second, "debug attempt 1: shape fix")
    assert (exp.state, exp.architecture_id) == ("proposed", second)
    assert db.experiments.events(exp.id)[-1].note == "debug attempt 1: shape fix"
    db.experiments.fail(exp.id, "crash")
    with pytest.raises(InvalidTransition):
        db.experiments.revise(exp.id, first, "too late")
