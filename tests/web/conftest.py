"""Studies for the dashboard tests.

`synthetic_study` writes rows straight through StudyDB (a second, no training): a baseline over
three seeds, scored children and grandchildren, a verified discovery and a verified non-discovery,
failed experiments with log tails, statistical and LLM analyses, LLM ledger calls — and hostile
text (`<script>` in names, motivations, code, logs, analyses and prompts) for the XSS tests.
`smoke_study` is a real `archscout run --preset smoke` (slow: shared by the whole session, used by
the browser test and one API test).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from archscout.records import CurvePoint, Failure, FailureKind, ProbeReport, RunResult, TaskResult
from archscout.study import open_study

XSS = "<script>alert(1)</script>"
REPO = Path(__file__).resolve().parents[2]


def run_result(seed: int, val_loss: float, bench: float, *, ok: bool = True, log: str = "") -> RunResult:
    tasks = {
        "lm": TaskResult(name="lm", kind="lm", steps_done=12, steps_planned=12, params=3000,
                         train_curve=[CurvePoint(step=i, value=6.3 - 0.02 * i) for i in range(12)],
                         eval_curve=[CurvePoint(step=6, value=val_loss + 0.1), CurvePoint(step=12, value=val_loss)],
                         val_loss=val_loss, tokens_per_s=15000.0),
        "mqar": TaskResult(name="mqar", kind="synthetic", steps_done=12, steps_planned=12, params=700,
                           eval_curve=[CurvePoint(step=6, value=bench / 2), CurvePoint(step=12, value=bench)],
                           accuracy=bench),
    }
    probes = [ProbeReport(name="causality", passed=True, seconds=0.1), ProbeReport(name="complexity", passed=False,
              reason=f"time grew 20x {XSS}", seconds=1.0)]
    if not ok:
        return RunResult(candidate_hash="x", preset="smoke", seed=seed, status="failed", probes=probes,
                         failure=Failure(kind=FailureKind.forward_error, message=f"boom {XSS}", log_tail=log))
    return RunResult(candidate_hash="x", preset="smoke", seed=seed, status="ok", probes=probes, tasks=tasks,
                     val_loss=val_loss, benchmark=bench, params=5000, total_params=30000, tokens_per_s=15000.0 + seed,
                     wall_s={"total": 2.0 + seed})


def verify_components(discovery: bool, effect: float) -> dict:
    cmp = {"metric": "val_loss", "higher_is_better": False, "candidate_mean": 6.0 - effect, "candidate_std": 0.01,
           "candidate_n": 3, "baseline_mean": 6.0, "baseline_std": 0.02, "baseline_n": 3, "effect": effect,
           "ci_low": effect - 0.01, "ci_high": effect + 0.01, "p_value": 0.001 if discovery else 0.6}
    return {"verdict": {"discovery": discovery, "q_value": 0.002 if discovery else 0.7, "p_value": cmp["p_value"],
                        "effect": effect, "worse_on_secondary": False, "reason": f"because {XSS}"},
            "comparisons": {"val_loss": cmp}, "seeds": [1000, 1001, 1002], "failed_seeds": [],
            "explore_delta": effect / 6 + 0.01, "verify_delta": effect / 6}


def build_synthetic(folder: Path) -> Path:
    """A small but complete study written row by row (no training)."""
    study = open_study(folder, {"preset": "smoke", "budget": 8, "name": f"demo {XSS}"}, create=True)
    db = study.db
    base = db.add_architecture("class DeltaNet: pass\n", name="deltanet", origin="baseline")
    for seed, loss in enumerate((6.00, 6.02, 5.98)):
        db.add_run(base, "explore", run_result(seed, loss, 0.1))
    db.add_score(base, "explore", "smoke", 0.5, {"loss_term": 0.5, "bench_term": 0.5, "judge_term": 0.5,
                                                  "delta_loss": 0.0, "delta_bench": 0.0})
    parents = [base]
    arch_ids = []
    for i in range(6):
        parent = parents[i // 2]
        exp = db.experiments.start(proposer="offline", parent_id=parent)
        name = f"{XSS}cand{i}" if i == 0 else f"cand{i}"
        code = f"# {XSS}\nclass DeltaNet:\n    width = {i}\n"
        arch = db.add_architecture(code, name=name, origin="offline", parent_id=parent,
                                   motivation=f"try width {i} {XSS}", experiment_id=exp.id)
        arch_ids.append(arch)
        parents.append(arch)
        db.add_run(arch, "explore", run_result(0, 6.0 - 0.01 * i, 0.1 + 0.01 * i))
        db.add_score(arch, "explore", "smoke", 0.5 + 0.03 * i, {"loss_term": 0.5 + 0.02 * i, "bench_term": 0.6,
                                                                "judge_term": 0.4, "delta_loss": 0.002 * i, "delta_bench": 0.01})
        db.add_analysis(arch, "statistical", f"analysis {i} {XSS}", {"z": float(i)})
        for state in ("proposed", "checked", "evaluated", "scored", "analyzed", "done"):
            db.experiments.advance(exp.id, state, architecture_id=arch)
    db.add_analysis(arch_ids[0], "llm", f"## Insight\n{XSS}", {"cognition": ["gated-delta-rule", "short-conv"]})
    db.ledger.add(agent="planner", provider="openai", model="gpt-test", prompt={"system": f"sys {XSS}", "user": f"u {XSS}"},
                  response=f"reply {XSS}", tokens_in=100, tokens_out=50, latency_s=1.2, cost_usd=0.0015, outcome="ok",
                  architecture_id=arch_ids[0])
    db.ledger.add(agent="analyzer", provider="openai", model="gpt-test", prompt={"user": "x"}, response=None, tokens_in=10,
                  tokens_out=0, latency_s=0.1, cost_usd=None, outcome="error", error=f"HTTP 500 {XSS}",
                  architecture_id=arch_ids[0])
    for arch, discovery, effect in ((arch_ids[5], True, 0.05), (arch_ids[4], False, -0.01)):
        for seed in (1000, 1001, 1002):
            db.add_run(arch, "verify", run_result(seed, 6.0 - effect, 0.15))
        db.add_score(arch, "verify", "smoke", 0.6, verify_components(discovery, effect))
    for reason, n in (("forward_error", 2), ("duplicate", 1)):
        for k in range(n):
            exp = db.experiments.start(proposer="offline", parent_id=base)
            arch = None
            if reason == "forward_error":
                arch = db.add_architecture(f"bad {k}\n", name=f"bad{k}", origin="offline", parent_id=base,
                                           motivation="bad", experiment_id=exp.id)
                db.add_run(arch, "explore", run_result(0, 0, 0, ok=False, log=f"Traceback\n  {XSS}\nValueError"))
                db.experiments.advance(exp.id, "proposed", architecture_id=arch)
            db.experiments.fail(exp.id, reason, f"failed: {XSS}")
    study.close()
    return folder


@pytest.fixture(scope="session")
def synthetic_study(tmp_path_factory) -> Path:
    return build_synthetic(tmp_path_factory.mktemp("web") / "study")


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """A real smoke-preset study: baseline over 2 seeds and 1 experiment (about a minute on 2 cores)."""
    folder = tmp_path_factory.mktemp("smoke") / "study"
    cmd = [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), "--preset", "smoke",
           "--set", "budget=1", "--set", "baseline_seeds=2"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return folder


@contextlib.contextmanager
def _serve(study: Path):
    """`archscout serve` on `study` in a child process on a free port; yields its URL once
    /index.json answers, and stops it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "archscout.cli", "serve", "--study", str(study), "--port", str(port)],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/index.json", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"archscout serve did not start: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def serve_study():
    """The dashboard served over real HTTP: `with serve_study(folder) as url: ...`."""
    return _serve
