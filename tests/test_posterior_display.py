"""The posterior fitness (mean, 90 % interval, runs combined) wherever the terminal shows fitness:
`status`, `show`, `report` (real CLI processes on a study written row by row) and the live view of
`archscout run` (ui.RunView fed the loop's end event, with the best posterior the loop computes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rich.console import Console

from archscout.analyze.posterior import best_posterior
from archscout.ladder import study_posteriors
from archscout.records import RunResult
from archscout.study import open_study
from archscout.ui import RunView


def _run(seed: int, val_loss: float, bench: float) -> RunResult:
    return RunResult(candidate_hash="synthetic", preset="smoke", seed=seed, status="ok", val_loss=val_loss,
                     benchmark=bench, params=1000)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Baseline over 3 seeds; `steady` with 3 agreeing runs, `lucky` with one good run, 4 average."""
    folder = tmp_path_factory.mktemp("display") / "study"
    handle = open_study(folder, {"preset": "smoke", "novelty.backend": "bm25"})
    db = handle.db
    base = db.add_architecture("# baseline\n", name="deltanet", origin="baseline")
    for seed, (loss, bench) in enumerate([(5.00, 0.50), (5.02, 0.48), (4.98, 0.52)]):
        db.add_run(base, "explore", _run(seed, loss, bench))
    db.add_score(base, "explore", "smoke", 0.5, {})
    cands = {"steady": [(4.97, 0.53)] * 3, "lucky": [(4.95, 0.55)]} | {f"avg{i}": [(5.0 + 0.01 * i, 0.5)] for i in range(4)}
    for name, runs in cands.items():
        arch = db.add_architecture(f"# {name}\n", name=name, origin="offline", parent_id=base)
        for seed, (loss, bench) in enumerate(runs):
            db.add_run(arch, "explore" if seed == 0 else "promote", _run(seed, loss, bench))
        db.add_score(arch, "explore", "smoke", 0.5 + (5.0 - runs[0][0]), {})
    posts = study_posteriors(handle)
    ids = {db.architecture(a).name: a for a in posts}
    handle.close()
    return folder, posts, ids


def _cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "archscout.cli", *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "250"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _shown(p) -> str:
    return f"{p.mean:.4f} [{p.lo:.4f}, {p.hi:.4f}] ({p.n} run{'' if p.n == 1 else 's'})"


def test_status_shows_each_best_architectures_posterior(study):
    folder, posts, ids = study
    out = _cli("status", "--study", str(folder))
    for name in ("steady", "lucky", "avg0"):
        assert _shown(posts[ids[name]]) in out, name
    assert "(3 runs)" in out and "(1 run)" in out


def test_show_prints_the_posterior_with_its_runs_by_rung(study):
    folder, posts, ids = study
    out = _cli("show", str(ids["steady"]), "--study", str(folder))
    assert f"posterior fitness {_shown(posts[ids['steady']])}, 90% interval; runs by rung: smoke 3" in out


def test_report_prints_the_best_by_posterior(study, tmp_path):
    folder, posts, ids = study
    out = _cli("report", "--study", str(folder))
    assert "best by posterior fitness" in out
    ranked = sorted(posts.values(), key=lambda p: -p.mean)
    for p in ranked[:3]:
        assert _shown(p) in out
    # the lucky single run is shrunk below the steady candidate's three agreeing runs
    assert out.index(_shown(posts[ids["steady"]])) < out.index(_shown(posts[ids["lucky"]]))
    rows = (folder / "report" / "posterior.csv").read_text().splitlines()
    assert rows[0].startswith("id,name,origin,fitness,mean,lo90,hi90")


def test_the_live_view_shows_the_posterior_best(study):
    folder, posts, ids = study
    handle = open_study(folder, create=False)
    try:
        best = best_posterior(handle.db, handle.config.rungs(), handle.config.fitness)
    finally:
        handle.close()
    top = max((p for a, p in posts.items() if a != ids["deltanet"]), key=lambda p: p.mean)
    assert best["arch_id"] == top.arch_id and best["mean"] == pytest.approx(top.mean) and best["n"] == top.n
    view = RunView(Console(), budget=8, done_before=0)
    view.event({"stage": "start", "seq": 1})
    view.event({"stage": "end", "seq": 1, "state": "done", "reason": None, "best": 0.55, "best_posterior": best})
    console = Console(record=True, width=200)
    console.print(view)
    text = console.export_text()
    assert "best run 0.5500" in text
    assert f"best posterior #{top.arch_id} {_shown(top)}" in text
