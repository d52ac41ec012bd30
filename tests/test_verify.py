"""`archscout verify` and `archscout report` end to end at the smoke preset, including resume
after the verification is killed mid-way."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archscout.loop import Loop
from archscout.study import open_study
from archscout.verify import VERIFY_SEED_BASE

CONFIG = {"preset": "smoke", "baseline_seeds": 3, "novelty.backend": "bm25", "budget": 3}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archscout.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def explored(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("verify") / "study"
    handle = open_study(folder, CONFIG)
    try:
        Loop(handle).run()
    finally:
        handle.close()
    return folder


@pytest.mark.timeout(900)
def test_verify_uses_fresh_seeds_resumes_after_a_kill_and_reports(explored):
    # start a verification, SIGKILL it once its first run is stored, then run it again
    proc = subprocess.Popen([sys.executable, "-m", "archscout.cli", "verify", "--study", str(explored), "--top", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = open_study(explored, create=False)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            ids = handle.db.architectures_with_runs("verify", "smoke")
            if ids and any(handle.db.runs_for(i, "verify") for i in ids):
                break
            time.sleep(0.5)
    finally:
        handle.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    done = _cli("verify", "--study", str(explored), "--top", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verified discover" in done.stdout.lower() or "no verified discoveries" in done.stdout.lower()

    handle = open_study(explored, create=False)
    try:
        verified = handle.db.architectures_with_runs("verify", "smoke")
        assert len(verified) == 2
        for arch_id in verified:
            runs = handle.db.runs_for(arch_id, "verify", "smoke")
            # fresh seeds only, each exactly once, none of them an exploration seed
            assert sorted(r.seed for r in runs) == [VERIFY_SEED_BASE + i for i in range(3)]
            score = handle.db.score(arch_id, "verify", "smoke")
            verdict = score.components["verdict"]
            assert isinstance(verdict["discovery"], bool) and verdict["reason"]
            assert set(score.components["comparisons"]) == {"val_loss", "benchmark"}
        rule = handle.db.study().config["verify"]["rule"]
        assert rule["q"] == 0.1 and rule["primary"] == "val_loss"
    finally:
        handle.close()

    report = _cli("report", "--study", str(explored))
    assert report.returncode == 0, report.stderr[-2000:]
    folder = explored / "report"
    for name in ("noise_floor.json", "verification.csv", "shrinkage.json", "scaling.csv", "scaling.png", "shrinkage.png"):
        assert (folder / name).exists() and (folder / name).stat().st_size > 0, name
    rows = json.loads((folder / "verification.json").read_text())
    assert {r["id"] for r in rows} == set(verified)
    curve = json.loads((folder / "scaling.json").read_text())
    assert curve[-1]["cumulative_compute_h"] > 0
    assert curve[-1]["cumulative_verified_discoveries"] == sum(r["discovery"] for r in rows)
