"""The dashboard shows the latest calibration of the study's preset, over real HTTP (`archscout serve`
in a subprocess) and in the static export; a study without one says "not calibrated" and still serves.

The calibration summary is written by the real summariser (calibration/summary.py `summarise` and
`write_outputs`, as `archscout calibrate --study` does) from RunResults built here, so no training
runs: deltanet learns MQAR on every seed, linear attention on one seed of three (bimodal), and the
no-mixing floor never."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from archscout.calibration.panel import load_panel, select
from archscout.calibration.summary import summarise, write_outputs
from archscout.records import CurvePoint, RunResult, TaskResult

REPO = Path(__file__).resolve().parents[2]
MEMBERS = ["deltanet", "linear_attention", "floor_no_mixing"]
# member -> per seed (val loss, MQAR accuracy)
MEASURED = {
    "deltanet": [(5.40, 0.95), (5.41, 0.93), (5.39, 0.97)],
    "linear_attention": [(5.52, 0.81), (5.53, 0.12), (5.51, 0.10)],
    "floor_no_mixing": [(5.90, 0.02), (5.91, 0.03), (5.92, 0.02)],
}


def _result(seed: int, loss: float, acc: float) -> RunResult:
    tasks = {
        "lm": TaskResult(name="lm", kind="lm", steps_done=12, steps_planned=12, params=3000, val_loss=loss,
                         eval_curve=[CurvePoint(step=12, value=loss)]),
        "mqar": TaskResult(name="mqar", kind="synthetic", steps_done=12, steps_planned=12, params=700, accuracy=acc,
                           accuracy_auc=acc / 2, eval_curve=[CurvePoint(step=6, value=acc / 2), CurvePoint(step=12, value=acc)]),
    }
    return RunResult(candidate_hash="x", preset="smoke", seed=seed, status="ok", tasks=tasks, val_loss=loss, benchmark=acc,
                     params=5000, total_params=30000, tokens_per_s=1000.0, wall_s={"total": 10.0 + seed})


def _calibrate(study: Path) -> None:
    panel = select(load_panel(), MEMBERS)
    results = {m: [_result(s, *v) for s, v in enumerate(runs)] for m, runs in MEASURED.items()}
    summary = summarise(panel, "smoke", results, n_boot=200)
    write_outputs(study / "calibration" / "report", [summary], {"smoke": results}, [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return response.read().decode()


@pytest.fixture()
def serve():
    procs = []

    def start(study: Path) -> str:
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "archscout.cli", "serve", "--study", str(study), "--port", str(port)],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(url + "/index.json")
                return url
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"archscout serve did not start: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.2)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def study_copy(synthetic_study, tmp_path) -> Path:
    # the synthetic study is shared by the session: calibrate a copy of it
    return Path(shutil.copytree(synthetic_study, tmp_path / "study"))


def test_served_dashboard_shows_the_latest_calibration(study_copy, serve):
    _calibrate(study_copy)
    url = serve(study_copy)
    data = json.loads(_get(url + "/calibration.json"))
    assert data["calibrated"] and data["preset"] == "smoke"
    assert [m["name"] for m in data["members"]] == MEMBERS
    dn = data["members"][0]["values"]["val_loss"]
    assert dn["mean"] == pytest.approx(5.40) and dn["std"] == pytest.approx(0.01) and dn["n"] == 3
    assert data["bimodal"] == ["linear_attention: mqar"]
    assert data["baseline_learns_every_task"] is True
    icc = data["icc"]["val_loss"]
    assert 0.9 < icc["value"] <= 1 and icc["ci_low"] <= icc["value"] <= icc["ci_high"]
    assert data["floors_last"]["val_loss"] is True
    assert data["orderings"] and all("tau" in o and o["source"] for o in data["orderings"])

    html = _get(url + "/calibration")
    assert "Latest calibration of preset <strong>smoke</strong>" in html
    assert "5.4 ± 0.01" in html  # deltanet's val loss: mean ± seed std
    assert "mqar 33.3% (bimodal)" in html  # linear attention learned on one seed of three
    assert "ICC [95% CI]" in html and "Kendall τ" in html
    overview = json.loads(_get(url + "/index.json"))["calibration"]
    assert overview["calibrated"] and overview["members"] == 3 and overview["bimodal"] == 1
    assert overview["fitness_icc"]["value"] == pytest.approx(data["icc"]["fitness_seed_sigma"]["value"])  # the default formula
    assert "Calibration of preset smoke" in _get(url + "/")


def test_a_study_without_calibration_says_not_calibrated(study_copy, serve):
    url = serve(study_copy)
    data = json.loads(_get(url + "/calibration.json"))
    assert data["calibrated"] is False and data["error"] is None
    assert "not calibrated" in _get(url + "/calibration")
    assert "archscout calibrate --study" in _get(url + "/calibration")
    assert "not calibrated" in _get(url + "/")


def test_an_unreadable_summary_is_reported_not_raised(study_copy, serve):
    (study_copy / "calibration").mkdir()
    (study_copy / "calibration" / "summary-smoke.json").write_text("{truncated")
    url = serve(study_copy)
    data = json.loads(_get(url + "/calibration.json"))
    assert data["calibrated"] is False and "cannot be read" in data["error"]
    assert "not calibrated" in _get(url + "/calibration")


def test_static_export_has_the_calibration_page(study_copy, tmp_path):
    from archscout.web.export import write_site
    from archscout.web.study import open_readonly

    study = open_readonly(study_copy)
    try:
        write_site(study, tmp_path / "before")
    finally:
        study.close()
    assert "not calibrated" in (tmp_path / "before" / "calibration.html").read_text()
    _calibrate(study_copy)
    study = open_readonly(study_copy)
    try:
        write_site(study, tmp_path / "after")
    finally:
        study.close()
    html = (tmp_path / "after" / "calibration.html").read_text()
    assert "Latest calibration of preset <strong>smoke</strong>" in html and "(bimodal)" in html
    assert json.loads((tmp_path / "after" / "calibration.json").read_text())["calibrated"] is True
    assert 'href="calibration.html"' in (tmp_path / "after" / "index.html").read_text()
