"""A stored calibration run is reused only for the same member source, the same preset definition
and the same evaluation version: re-sizing a preset under its old name, or a row stored by an older
evaluation path (keyed by the bare code hash), is run again rather than mixed into the statistics."""

from __future__ import annotations

from archscout.calibration.panel import load_panel, select
from archscout.calibration.run import member_hashes, pending, plan, preset_keys, run_key
from archscout.calibration.store import CalibrationStore
from archscout.config import get_preset
from archscout.records import RunResult

SMOKE = get_preset("smoke")


def _store_one(folder, member: str, source_hash: str, preset, key: str) -> CalibrationStore:
    store = CalibrationStore(folder)
    store.add(member, RunResult(candidate_hash=source_hash, preset=preset.name, seed=0, status="ok", val_loss=5.0), key)
    return store


def test_finished_run_is_reused_only_under_the_same_preset_definition(tmp_path):
    panel = select(load_panel(), ["deltanet"])
    hashes = member_hashes(panel)
    store = _store_one(tmp_path, "deltanet", hashes["deltanet"], SMOKE, run_key(hashes["deltanet"], SMOKE))
    try:
        assert pending(plan(panel, [SMOKE], 1), store, hashes) == []
        assert len(store.results("smoke", preset_keys(hashes, SMOKE))["deltanet"]) == 1
        # the same name with more training steps is another instrument
        tasks = [t.model_copy(update={"optim": t.optim.model_copy(update={"steps": 24})}) for t in SMOKE.tasks]
        resized = SMOKE.model_copy(update={"tasks": tasks})
        assert [j.seed for j in pending(plan(panel, [resized], 1), store, hashes)] == [0]
        assert store.results("smoke", preset_keys(hashes, resized))["deltanet"] == []
        threads = SMOKE.model_copy(update={"num_threads": 2})
        assert len(pending(plan(panel, [threads], 1), store, hashes)) == 1
        # a new description or pool cadence measures the same thing
        reworded = SMOKE.model_copy(update={"description": "reworded", "pool": SMOKE.pool.model_copy(update={"cold_start": 9})})
        assert pending(plan(panel, [reworded], 1), store, hashes) == []
        assert len(store.results("smoke", preset_keys(hashes, reworded))["deltanet"]) == 1
    finally:
        store.close()


def test_a_row_keyed_by_the_bare_code_hash_is_not_reused(tmp_path):
    # how rows were keyed before the evaluation version and the preset entered the key
    panel = select(load_panel(), ["deltanet"])
    hashes = member_hashes(panel)
    store = _store_one(tmp_path, "deltanet", hashes["deltanet"], SMOKE, None)
    try:
        assert len(pending(plan(panel, [SMOKE], 1), store, hashes)) == 1
        assert store.results("smoke", preset_keys(hashes, SMOKE))["deltanet"] == []
    finally:
        store.close()
