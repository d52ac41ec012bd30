"""The store's set-based reads equal their one-at-a-time definitions: architecture views
(store/views.py) and the contents cache behind them, which never serves stale or rolled-back data;
siblings; parents; the posterior's runs."""

from __future__ import annotations

import pytest

from archscout.records import ArchView, FailureKind, RunResult, failed_result
from archscout.store.db import IN_CHUNK
from archscout.store.external import set_parent
from archscout.store.views import arch_view, arch_views

PRESET, SEED = "smoke", 0


def run(seed: int, val_loss: float, preset: str = PRESET) -> RunResult:
    return RunResult(candidate_hash="h", preset=preset, seed=seed, status="ok", val_loss=val_loss,
                     benchmark=val_loss / 10, params=1000 + seed, tokens_per_s=100.0 * (seed + 1),
                     wall_s={"total": 1.0})


def one_at_a_time(db, arch_id: int) -> ArchView | None:
    """The view as defined row by row: the explore run at SEED (else the lowest ok seed), the
    explore score, the latest analysis."""
    arch = db.architecture(arch_id)
    if arch is None:
        return None
    runs = [r for r in db.runs_for(arch_id, "explore", PRESET) if r.status == "ok"]
    chosen = next((r for r in runs if r.seed == SEED), runs[0] if runs else None)
    score = db.score(arch_id, "explore", PRESET)
    analyses = db.analyses_for(arch_id)
    return ArchView(
        id=arch.id, name=arch.name, code=arch.code, motivation=arch.motivation, genome=arch.genome,
        fitness=score.fitness if score else None, val_loss=chosen.val_loss if chosen else None,
        benchmark=chosen.benchmark if chosen else None, tokens_per_s=chosen.tokens_per_s if chosen else None,
        params=chosen.params if chosen else None, analysis=analyses[-1].text if analyses else "",
    )


def test_batched_views_equal_the_row_by_row_definition(db):
    plain = db.add_architecture("a = 1", name="plain", origin="baseline", motivation="seed")
    full = db.add_architecture("b = 1", name="full", origin="offline", parent_id=plain, motivation="m",
                               genome={"memory": "delta", "paths": ["memory", "local"]})
    fallback = db.add_architecture("c = 1", name="fallback", origin="offline", parent_id=full)
    db.add_run(full, "explore", run(SEED, 3.0))
    db.add_run(full, "explore", run(3, 2.0))
    db.add_run(full, "verify", run(SEED, 1.0))  # other stages and presets are not the view's
    db.add_run(full, "explore", run(SEED, 1.5, preset="nano"))
    db.add_score(full, "explore", PRESET, 0.7, {})
    db.add_score(full, "explore", "nano", 0.9, {})
    db.add_analysis(full, "statistical", "first")
    db.add_analysis(full, "llm", "latest")
    db.add_analysis(plain, "statistical", "only one")
    # the study seed failed: the lowest ok seed stands in
    db.add_run(fallback, "explore", failed_result(candidate_hash="h", preset=PRESET, seed=SEED,
                                                  kind=FailureKind.nan, message="nan"))
    db.add_run(fallback, "explore", run(5, 4.0))
    db.add_run(fallback, "explore", run(2, 4.5))

    views = arch_views(db, [fallback, None, full, plain, full + 1000], PRESET, SEED)
    assert sorted(views) == [plain, full, fallback]
    for arch_id in (plain, full, fallback):
        assert views[arch_id] == one_at_a_time(db, arch_id)
    assert views[fallback].val_loss == 4.5 and views[full].analysis == "latest"
    assert arch_view(db, full, PRESET, SEED) == views[full]
    assert arch_view(db, None, PRESET, SEED) is None and arch_view(db, full + 1000, PRESET, SEED) is None


def test_views_of_more_ids_than_one_in_list_holds(sqlite_db):
    db = sqlite_db
    ids = [db.add_architecture(f"x = {i}", name=f"m{i}", origin="offline") for i in range(IN_CHUNK * 2 + 7)]
    for i in ids[::97]:
        db.add_score(i, "explore", PRESET, i / 10_000, {})
    views = arch_views(db, ids, PRESET, SEED)
    assert sorted(views) == ids
    assert {i for i, v in views.items() if v.fitness is not None} == set(ids[::97])
    assert db.parent_ids(ids) == {i: None for i in ids}


def test_what_can_change_is_read_fresh_after_the_contents_are_cached(db):
    parent = db.add_architecture("p = 1", name="p", origin="baseline")
    child = db.add_architecture("c = 1", name="c", origin="import", genome={"memory": "delta"})
    first = arch_view(db, child, PRESET, SEED)
    assert (first.fitness, first.val_loss, first.analysis) == (None, None, "")
    first.genome["memory"] = "mutated by a caller"
    db.add_run(child, "explore", run(SEED, 3.0))
    db.add_score(child, "explore", PRESET, 0.4, {})
    db.add_analysis(child, "statistical", "now analysed")
    later = arch_view(db, child, PRESET, SEED)
    assert (later.fitness, later.val_loss, later.analysis) == (0.4, 3.0, "now analysed")
    assert later.genome == {"memory": "delta"}  # the cached genome is not the caller's copy
    db.add_run(child, "explore", run(SEED, 2.5))  # a re-run replaces the row
    db.add_score(child, "explore", PRESET, 0.6, {})  # a re-score replaces the row
    assert (arch_view(db, child, PRESET, SEED).val_loss, arch_view(db, child, PRESET, SEED).fitness) == (2.5, 0.6)
    # an import links the parent later: parent ids are never served from the cache
    assert db.parent_ids([child]) == {child: None}
    set_parent(db, child, parent)
    assert db.parent_ids([child]) == {child: parent}


class _Rollback(Exception):
    pass


def test_an_architecture_seen_in_a_rolled_back_transaction_is_not_cached(sqlite_db):
    db = sqlite_db
    db.add_architecture("keep = 1", name="keep", origin="baseline")
    with pytest.raises(_Rollback):
        with db.transaction() as tx:
            ghost = db.add_architecture("ghost = 1", name="ghost", origin="offline", conn=tx)
            assert arch_views(db, [ghost], PRESET, SEED, conn=tx)[ghost].name == "ghost"
            raise _Rollback
    assert arch_views(db, [ghost], PRESET, SEED) == {}
    # SQLite hands the rolled-back id out again: the view is the new row's, not the ghost's
    real = db.add_architecture("real = 1", name="real", origin="offline")
    assert real == ghost
    assert arch_view(db, real, PRESET, SEED).name == "real"


def test_scored_children_are_the_childrens_ids_with_a_score_at_the_stage_and_preset(db):
    root = db.add_architecture("r = 1", name="r", origin="baseline")
    kids = [db.add_architecture(f"k = {i}", name=f"k{i}", origin="offline", parent_id=root) for i in range(4)]
    other = db.add_architecture("o = 1", name="o", origin="offline")
    db.add_architecture("g = 1", name="g", origin="offline", parent_id=kids[0])
    db.add_score(kids[2], "explore", PRESET, 0.5, {})
    db.add_score(kids[0], "explore", PRESET, 0.1, {})
    db.add_score(kids[1], "explore", "nano", 0.9, {})
    db.add_score(kids[3], "promote", PRESET, 0.9, {})
    db.add_score(other, "explore", PRESET, 0.9, {})
    assert db.scored_children(root, "explore", PRESET) == [kids[0], kids[2]]
    assert db.scored_children(other, "explore", PRESET) == []


def test_ok_run_keys_are_runs_for_filtered_and_runs_by_id_loads_them(db):
    a = db.add_architecture("a = 1", name="a", origin="offline")
    b = db.add_architecture("b = 1", name="b", origin="offline")
    quiet = db.add_architecture("q = 1", name="q", origin="offline")
    for arch, stage, preset, seed in [(a, "explore", PRESET, 0), (a, "promote", PRESET, 2), (a, "promote", PRESET, 1),
                                      (a, "promote", "nano", 0), (a, "verify", PRESET, 0), (b, "explore", "tiny", 0),
                                      (b, "explore", PRESET, 4)]:
        db.add_run(arch, stage, run(seed, 1.0 + seed, preset=preset))
    db.add_run(b, "explore", failed_result(candidate_hash="h", preset=PRESET, seed=0, kind=FailureKind.nan, message="x"))
    db.add_run(quiet, "verify", run(0, 1.0))
    stages, presets = ("explore", "promote"), [PRESET, "nano"]
    got = db.ok_run_keys([b, a, quiet, a + 1000], stages, presets)

    def wanted(arch_id):
        return [r for r in db.runs_for(arch_id) if r.stage in stages and r.preset in presets
                and r.status == "ok" and r.val_loss is not None]

    assert {k: [(r.id, r.stage, r.preset, r.seed, r.created_at) for r in v] for k, v in got.items()} == {
        arch: [(r.id, r.stage, r.preset, r.seed, r.created_at) for r in wanted(arch)] for arch in (a, b)}
    assert [(k.stage, k.preset, k.seed) for k in got[a]] == [
        ("explore", PRESET, 0), ("promote", "nano", 0), ("promote", PRESET, 1), ("promote", PRESET, 2)]
    assert db.ok_run_keys([], stages, presets) == {}
    loaded = db.runs_by_id([k.id for k in got[a]] + [10_000])
    assert list(loaded.values()) == sorted(wanted(a), key=lambda r: r.id)
    # a replaced run keeps its id and gets a new version
    before = got[b][0]
    db.add_run(b, "explore", run(4, 9.0))
    after = db.ok_run_keys([b], stages, presets)[b][0]
    assert after.id == before.id and after.created_at > before.created_at
    assert db.runs_by_id([after.id])[after.id].val_loss == 9.0
