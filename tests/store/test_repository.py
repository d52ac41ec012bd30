"""Repository functions of StudyDB: study config, architectures, runs, scores, analyses, counts."""

from __future__ import annotations

import pytest

from archscout.records import FailureKind, RunResult, code_hash, failed_result
from archscout.store import StoreError


def ok_result(preset="tiny", seed=0, val_loss=3.0, **extra) -> RunResult:
    return RunResult(
        candidate_hash="h", preset=preset, seed=seed, status="ok", val_loss=val_loss,
        benchmark=0.5, params=12_345, tokens_per_s=1000.0, wall_s={"total": 42.0}, **extra,
    )


def test_study_config_is_created_once_and_updatable(db):
    assert db.study() is None
    with pytest.raises(StoreError):
        db.set_config({"preset": "tiny"})
    study = db.create_study("s1", {"preset": "tiny"})
    assert study.name == "s1" and study.config == {"preset": "tiny"}
    assert study.created_at.tzinfo is not None
    db.set_config({"preset": "small"})
    assert db.study().config == {"preset": "small"}
    with pytest.raises(StoreError):
        db.create_study("s2", {})


def test_architecture_round_trips_and_same_code_returns_the_same_id(db):
    code = "class M: pass\n"
    a = db.add_architecture(
        code, name="m", origin="llm", norm_hash="n", motivation="why", genome={"gate": "sigmoid"},
        experiment_id=7,
    )
    again = db.add_architecture(code, name="other name", origin="offline")
    assert again == a
    arch = db.architecture(a)
    assert (arch.name, arch.origin, arch.code_hash) == ("m", "llm", code_hash(code))
    assert arch.genome == {"gate": "sigmoid"} and arch.experiment_id == 7
    assert db.architecture_by_code_hash(code_hash(code)).id == a
    assert db.architecture(a + 100) is None
    plain = db.add_architecture("y = 2", name="y", origin="import")
    assert db.architecture(plain).genome is None


def test_unknown_origin_is_rejected(db):
    with pytest.raises(ValueError, match="origin"):
        db.add_architecture("x", name="x", origin="martian")


def test_norm_hash_lookup_and_children(db, add_arch):
    root = add_arch(db, norm_hash="shared")
    twin = add_arch(db, norm_hash="shared")
    kids = [add_arch(db, parent_id=root) for _ in range(3)]
    add_arch(db, parent_id=twin)
    assert [a.id for a in db.architectures_by_norm_hash("shared")] == [root, twin]
    assert db.architectures_by_norm_hash("unseen") == []
    assert [a.id for a in db.children_of(root)] == kids


def test_all_motivations_skips_architectures_without_one(db):
    a = db.add_architecture("a = 1", name="a", origin="llm", motivation="gate the delta")
    db.add_architecture("b = 1", name="b", origin="baseline")
    assert db.all_motivations() == [(a, "gate the delta")]


def test_adding_the_same_run_key_replaces_it(db, add_arch):
    a = add_arch(db)
    first = db.add_run(a, "explore", ok_result(val_loss=3.0))
    second = db.add_run(a, "explore", ok_result(val_loss=2.5))
    assert first == second
    (run,) = db.runs_for(a)
    assert run.val_loss == 2.5 and run.result.val_loss == 2.5
    assert (run.params, run.wall_s, run.tokens_per_s) == (12_345, 42.0, 1000.0)


def test_several_runs_per_architecture_are_kept_and_filtered(db, add_arch):
    a = add_arch(db)
    for seed in range(3):
        db.add_run(a, "verify", ok_result(preset="small", seed=seed))
    db.add_run(a, "explore", ok_result())
    failed = failed_result(
        candidate_hash="h", preset="tiny", seed=1, kind=FailureKind.nan, message="nan\nmore"
    )
    db.add_run(a, "explore", failed)
    assert len(db.runs_for(a)) == 5
    assert [r.seed for r in db.runs_for(a, stage="verify")] == [0, 1, 2]
    explore = db.runs_for(a, stage="explore", preset="tiny")
    assert [(r.seed, r.status, r.failure_kind) for r in explore] == [
        (0, "ok", None),
        (1, "failed", "nan"),
    ]
    assert explore[1].result.failure.message == "nan"
    assert db.runs_for(a, preset="missing") == []


def test_run_of_an_unknown_architecture_violates_the_foreign_key(db):
    with pytest.raises(Exception, match="(?i)foreign key"):
        db.add_run(12345, "explore", ok_result())


def test_score_is_replaced_per_stage_and_preset(db, add_arch):
    a = add_arch(db)
    db.add_score(a, "explore", "tiny", 0.4, {"loss_term": 0.1}, {"baseline_ids": [1]})
    db.add_score(a, "explore", "tiny", 0.6, {"loss_term": 0.2})
    db.add_score(a, "verify", "small", 0.9, {})
    score = db.score(a, "explore", "tiny")
    assert score.fitness == 0.6 and score.components == {"loss_term": 0.2}
    assert score.baseline_ref is None
    assert db.score(a, "verify", "small").fitness == 0.9
    assert db.score(a, "verify", "tiny") is None


def test_top_scores_rank_one_stage_and_preset(db, add_arch):
    ids = [add_arch(db) for _ in range(6)]
    for i, a in enumerate(ids):
        db.add_score(a, "explore", "tiny", float(i % 3), {})
        db.add_score(a, "explore", "other", 10.0 - i, {})
    top = db.top_scores("explore", "tiny", 4)
    # ties are broken by the older architecture first
    assert top == [(ids[2], 2.0), (ids[5], 2.0), (ids[1], 1.0), (ids[4], 1.0)]
    assert db.count_scored("explore", "tiny") == 6
    assert db.scored_at_rank("explore", "tiny", 0) == ids[2]
    assert db.scored_at_rank("explore", "tiny", 6) is None
    assert db.fitness_of(ids[:2], "explore", "other") == {ids[0]: 10.0, ids[1]: 9.0}


def test_analyses_are_kept_in_order_per_kind(db, add_arch):
    a = add_arch(db)
    db.add_analysis(a, "statistical", "loss 2.9 vs baseline 3.0", {"delta_loss": -0.1})
    db.add_analysis(a, "llm", "the gate helps recall")
    assert [x.kind for x in db.analyses_for(a)] == ["statistical", "llm"]
    (llm,) = db.analyses_for(a, kind="llm")
    assert llm.text == "the gate helps recall" and llm.numbers is None
    with pytest.raises(ValueError):
        db.add_analysis(a, "astrology", "")


def test_pool_versions_are_numbered_in_order(db, add_arch):
    assert db.latest_pool_version() is None
    a, b = add_arch(db), add_arch(db)
    v1 = db.save_pool_version([(a, None), (b, 1.0)], experiments_seen=0)
    v2 = db.save_pool_version([(b, 2.0)], experiments_seen=50)
    assert (v1.version, v2.version) == (1, 2)
    latest = db.latest_pool_version()
    assert latest.version == 2 and latest.ids == [b] and latest.experiments_seen == 50
    assert db.pool_version(1).members[0].fitness is None


def test_counts_for_status(db, add_arch):
    a = add_arch(db)
    db.add_run(a, "explore", ok_result(seed=0))
    timeout = failed_result(
        candidate_hash="h", preset="tiny", seed=1, kind=FailureKind.timeout, message="t"
    )
    db.add_run(a, "explore", timeout)
    db.add_score(a, "explore", "tiny", 1.0, {})
    counts = db.counts()
    assert counts["architectures"] == 1 and counts["scores"] == 1
    assert (counts["runs"], counts["runs_ok"], counts["runs_failed"]) == (2, 1, 1)


def test_writes_in_one_transaction_commit_together_or_not_at_all(db, add_arch):
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            a = add_arch(db, conn=tx)
            db.add_score(a, "explore", "tiny", 1.0, {}, conn=tx)
            raise RuntimeError("crash between stages")
    assert db.counts()["architectures"] == 0 and db.counts()["scores"] == 0


def test_an_unknown_statistic_is_stored_as_null_on_every_backend(db, add_arch):
    # the seed std of a single baseline run is NaN ("unknown"); PostgreSQL's json refuses NaN
    arch = add_arch(db)
    db.add_score(arch, "explore", "smoke", 0.5, {"loss_term": 0.5, "spread": [1.0, float("inf")]},
                 {"n": 1, "val_loss_std": float("nan")})
    score = db.score(arch, "explore", "smoke")
    assert score.baseline_ref == {"n": 1, "val_loss_std": None}
    assert score.components == {"loss_term": 0.5, "spread": [1.0, None]}
