"""`archscout calibrate` end to end: bad input is one line and exit 2 with nothing written; a real
calibration at `smoke` (3 members x 2 seeds) survives SIGKILL mid-run and resumes without re-running
a finished evaluation, then writes its summary, CSV and dot plot, which `archscout report` shows."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from archscout.cli import app
from archscout.study import open_study

MEMBERS = "deltanet,linear_attention,floor_no_mixing"
runner = CliRunner()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--seeds", "1"], "--seeds must be at least 2"),
        (["--preset", "smoke,huge"], "unknown preset 'huge'"),
        (["--members", "deltanet,mamba7"], "unknown panel member 'mamba7'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, fragment):
    folder = tmp_path / "cal"
    result = runner.invoke(app, ["calibrate", "--preset", "smoke", "--dir", str(folder), *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not folder.exists()


def test_panel_file_with_a_member_without_citation_is_rejected(tmp_path):
    (tmp_path / "m.py").write_text("# member\n")
    panel = tmp_path / "panel.toml"
    panel.write_text('[[member]]\nname = "m"\nfile = "m.py"\n')
    result = runner.invoke(app, ["calibrate", "--preset", "smoke", "--panel", str(panel), "--dir", str(tmp_path / "cal")])
    assert result.exit_code == 2 and "member 'm' has no citation" in result.output


def _rows(db):
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT member, seed, finished_at, result FROM runs").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {(m, s): (f, r) for m, s, f, r in rows}


@pytest.mark.slow
def test_calibration_resumes_after_sigkill_without_rerunning_finished_evaluations(tmp_path):
    study = tmp_path / "study"
    open_study(study, {"preset": "smoke", "novelty.backend": "bm25"}, create=True).close()
    folder = study / "calibration"
    db = folder / "calibration.db"
    cmd = [sys.executable, "-m", "archscout.cli", "calibrate", "--preset", "smoke", "--seeds", "2",
           "--members", MEMBERS, "--study", str(study), "--bootstrap", "50", "--json"]
    # a session of its own: SIGKILL reaches the command and the sandboxed worker it is waiting on
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _rows(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = _rows(db)
    assert 1 <= len(before) < 6

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _rows(db)
    assert len(after) == 6
    # the evaluations finished before the kill were kept as they were, not run again
    for key, row in before.items():
        assert after[key] == row
    summary = json.loads(done.stdout)["presets"][0]
    assert summary["preset"] == "smoke"
    assert {m: e["n_ok"] for m, e in summary["members"].items()} == dict.fromkeys(MEMBERS.split(","), 2)
    assert "icc" in summary["metrics"]["val_loss"]
    report = folder / "report"
    assert (report / "runs-smoke.csv").read_text().count("\n") == 7
    assert (report / "dots-smoke.png").stat().st_size > 1000
    assert (folder / "summary-smoke.json").is_file()
    # `archscout report` shows the latest calibration of the study's preset
    report = subprocess.run([sys.executable, "-m", "archscout.cli", "report", "--study", str(study)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "calibration · preset smoke" in report.stdout and "ICC" in report.stdout
