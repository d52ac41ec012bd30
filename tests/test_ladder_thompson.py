"""Thompson sampling at the ladder's promotion step (`ladder.promote = "thompson"`), on synthetic scores
whose noise is known: the draw picks candidates with their posterior probability of clearing the
cutoff (settled ones never), a fixed rng gives a fixed plan, a simulated study promotes the planted
good candidate in both modes while thompson spreads its seeds over more uncertain candidates, and a
bad `promote` value is one line naming the field."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from archscout.analyze.posterior import Posterior, thompson_picks
from archscout.loop import Loop
from archscout.records import RunResult
from archscout.study import open_study

SIGMA = 0.02  # the baseline's seed sigma on loss and benchmark below


def _post(arch_id: int, mean: float, sd: float) -> Posterior:
    return Posterior(arch_id, mean, sd, mean - 1.645 * sd, mean + 1.645 * sd, 1)


def test_the_draw_picks_with_the_probability_of_clearing_the_cutoff():
    settled_below = _post(1, 0.50, 0.002)  # interval wholly under the cutoff: never drawn
    uncertain = _post(2, 0.49, 0.03)  # one run near the cutoff
    settled_above = _post(3, 0.60, 0.005)
    cutoff, rng, n = 0.51, random.Random(3), 4000
    picked = {1: 0, 2: 0, 3: 0}
    for _ in range(n):
        for post, draw, chance in thompson_picks([settled_above, uncertain, settled_below], cutoff, 3, rng):
            assert draw >= cutoff and 0 <= chance <= 1
            picked[post.arch_id] += 1
    assert picked[1] == 0
    assert picked[3] == n
    expected = stats.norm.sf(cutoff, 0.49, 0.03)  # 0.25
    assert abs(picked[2] / n - expected) < 0.03
    # slots bound the picks, highest draw first
    one = thompson_picks([uncertain, settled_above], cutoff, 1, random.Random(0))
    assert [p.arch_id for p, _, _ in one] == [3]


def _presets(tmp_path: Path) -> Path:
    text = Path(__import__("archscout").__file__).with_name("presets.toml").read_text()
    block = text.split("[preset.smoke]")[1].split("# ----")[0]
    block = block.replace("[[preset.smoke.tasks]]", "[[preset.smoke_big.tasks]]").replace("steps = 12", "steps = 18")
    path = tmp_path / "presets.toml"
    path.write_text("[preset.smoke_big]" + block)
    return path


def _run(preset: str, seed: int, val_loss: float, bench: float) -> RunResult:
    return RunResult(candidate_hash="synthetic", preset=preset, seed=seed, status="ok", val_loss=val_loss,
                     benchmark=bench, params=1000)


# true (loss, benchmark) of each synthetic candidate; every run adds N(0, SIGMA) to both
TRUE = {f"avg{i}": (5.0, 0.5) for i in range(16)} | {"planted": (4.955, 0.545), "hopeless": (5.08, 0.42)}
FIRST_RUN_NOISE = {"planted": (0.012, -0.012)}  # its exploration run undersells it by ~0.6 sigma


def _study(tmp_path: Path, promote: str):
    handle = open_study(tmp_path / promote, {
        "preset": "smoke", "presets_file": str(_presets(tmp_path)), "baseline_seeds": 3, "novelty.backend": "bm25",
        "ladder.rungs": ["smoke", "smoke_big"], "ladder.seeds": [3, 2], "ladder.top_fraction": 0.15,
        "ladder.promote": promote})
    db, noise = handle.db, np.random.default_rng(1)
    base = db.add_architecture("# baseline\n", name="deltanet", origin="baseline")
    for rung in ("smoke", "smoke_big"):
        for seed, (loss, bench) in enumerate([(5.00, 0.50), (5.02, 0.48), (4.98, 0.52)]):
            db.add_run(base, "explore", _run(rung, seed, loss, bench))
    ids = {}
    for name, (loss, bench) in TRUE.items():
        ids[name] = db.add_architecture(f"# {name}\n", name=name, origin="offline")
        dl, db_ = FIRST_RUN_NOISE.get(name, tuple(noise.normal(0, SIGMA, 2)))
        db.add_run(ids[name], "explore", _run("smoke", 0, loss + dl, bench + db_))
    # hopeless is measured well: three seeds, its interval far under any cutoff
    for seed in (1, 2):
        db.add_run(ids["hopeless"], "promote", _run("smoke", seed, 5.08, 0.42))
    return handle, ids


def _simulate(handle, ids: dict[str, int], batches: int) -> dict:
    """Plan with a fixed rng, store the runs each plan asks for from the candidates' true scores plus
    seed noise (what Ladder.execute would train), repeat; what each candidate got."""
    ladder, db, noise = Loop(handle).ladder, handle.db, np.random.default_rng(2)
    names = {v: k for k, v in ids.items()}
    seeded: dict[str, int] = {}
    promoted: list[str] = []
    for b in range(batches):
        for item in ladder.decide(random.Random(b)):
            name = names[item["architecture_id"]]
            if item["action"] == "seeds":
                seeded[name] = seeded.get(name, 0) + 1
            if item["action"] == "promote":
                promoted.append(name)
            have = {r.seed for r in db.runs_for(item["architecture_id"], preset=item["rung"])}
            for seed in item["seeds"]:
                if seed not in have:
                    loss, bench = TRUE[name]
                    db.add_run(item["architecture_id"], "promote",
                               _run(item["rung"], seed, loss + noise.normal(0, SIGMA), bench + noise.normal(0, SIGMA)))
    return {"seeded": seeded, "promoted": promoted}


def test_thompson_promotes_the_planted_candidate_and_spreads_seeds_over_uncertain_ones(tmp_path):
    results = {}
    for promote in ("top", "thompson"):
        handle, ids = _study(tmp_path, promote)
        try:
            if promote == "thompson":
                ladder = Loop(handle).ladder
                first = ladder.decide(random.Random(5))
                assert first == ladder.decide(random.Random(5)), "a fixed rng must give a fixed plan"
                assert first and all(i["action"] == "seeds" and len(i["seeds"]) == 2 for i in first)
                assert all("thompson" in i["reason"] and "P(above)" in i["reason"] for i in first)
            results[promote] = _simulate(handle, ids, batches=8)
        finally:
            handle.close()
    for promote, got in results.items():
        assert "planted" in got["promoted"], (promote, got)
        assert "hopeless" not in got["seeded"], (promote, got)
    # thompson gives one seed at a time to more distinct candidates than the top fraction reaches
    assert len(results["thompson"]["seeded"]) > len(results["top"]["seeded"]), results


def test_a_bad_promote_value_is_one_line_naming_the_field(tmp_path):
    folder = tmp_path / "study"
    out = subprocess.run([sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), "--set",
                          'ladder.rungs=["smoke", "nano"]', "--set", 'ladder.promote="ucb"'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "ladder.promote" in lines[0], out.stderr
    assert not folder.exists()


@pytest.mark.parametrize("promote", ["top", "thompson"])
def test_the_setting_round_trips_through_study_toml(tmp_path, promote):
    handle = open_study(tmp_path / "s", {"ladder.rungs": ["smoke", "nano"], "ladder.promote": promote})
    handle.close()
    assert f'promote = "{promote}"' in (tmp_path / "s" / "study.toml").read_text()
