"""Parent side of an evaluation: candidate source in, validated `RunResult` out.

Prepares the task data (tokenizer, corpus cache) in the parent, where no candidate code runs, then
runs the worker child twice through the sandbox — once for the probes, once for training — each
phase with its own wall-clock limit. The child's result file is validated: a missing, corrupt or
mismatched result becomes an `invalid_result` failure. During training the parent scores the run
itself (scoring.py): every number that enters fitness is computed here, from logits the child
returns for held-out batches it sees only one at a time. The parent never imports candidate code.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from archscout.config import Preset
from archscout.evaluate import sandbox, scoring
from archscout.evaluate.tasks import default_cache_dir, prepare
from archscout.records import FailureKind, RunResult, code_hash, failed_result

Progress = Callable[[dict], None]


class _ProgressTail:
    """Reads new JSON lines from the child's progress file on each poll."""

    def __init__(self, path: Path, sink: Progress | None):
        self.path, self.sink, self.offset = path, sink, 0

    def __call__(self) -> None:
        if self.sink is None or not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(1 << 20)
        # only complete lines; a half-written line is read on the next poll
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.sink(event)


def absolute_corpora(preset: Preset) -> Preset:
    """The preset with user corpus paths made absolute: the child runs in another directory."""
    preset = preset.model_copy(deep=True)
    for task in preset.tasks:
        if task.kind == "lm":
            task.corpus = [c if c == "kjv" else str(Path(c).expanduser().resolve()) for c in task.corpus]
    return preset


def prepare_tasks(preset: Preset, cache_dir: Path) -> None:
    for spec in preset.tasks:
        prepare(spec, cache_dir)


def _validate(outcome: sandbox.SandboxOutcome, base: dict) -> RunResult:
    kind, message = sandbox.classify(outcome)
    log_tail = (outcome.stderr or outcome.stdout)[-4000:]
    if outcome.result_bytes is None or kind is not None and kind != FailureKind.invalid_result:
        if kind is None:
            kind, message = FailureKind.invalid_result, "the worker exited without writing a result"
        return failed_result(kind=kind, message=message, log_tail=log_tail, tasks=_finished_tasks(outcome, kind, base), **base)
    try:
        result = RunResult.model_validate_json(outcome.result_bytes)
    except ValidationError as err:
        return failed_result(
            kind=FailureKind.invalid_result, message=f"corrupt result: {err.errors()[0]['msg']}", log_tail=log_tail, **base
        )
    # a result for another candidate, preset or seed is forged or stale
    mismatch = [k for k in ("candidate_hash", "preset", "seed") if getattr(result, k) != base[k]]
    if mismatch:
        return failed_result(
            kind=FailureKind.invalid_result, message=f"result does not match the job: {', '.join(mismatch)}", **base
        )
    if result.status == "failed" and result.failure is None:
        return failed_result(kind=FailureKind.invalid_result, message="failed result without a reason", **base)
    if result.failure is not None and not result.failure.log_tail and outcome.stderr:
        result.failure.log_tail = outcome.stderr[-4000:]
    return result


def _finished_tasks(outcome: sandbox.SandboxOutcome, kind: FailureKind, base: dict) -> dict:
    """Tasks a timed-out training child finished before it was killed (it writes them as it goes)."""
    if kind != FailureKind.timeout or outcome.result_bytes is None:
        return {}
    try:
        partial = RunResult.model_validate_json(outcome.result_bytes)
    except ValidationError:
        return {}
    if any(getattr(partial, k) != base[k] for k in ("candidate_hash", "preset", "seed")):
        return {}
    return partial.tasks


def _run_phase(
    phase: str,
    source_path: Path,
    base: dict,
    preset: Preset,
    *,
    class_name: str | None,
    cache_dir: Path,
    device: str,
    baseline_params: int | None,
    references: dict[str, dict] | None,
    progress: Progress | None,
    keep_scratch: bool,
    checks: dict | None = None,
    extra_paths: list[str] | None = None,
) -> tuple[RunResult, float, str]:
    scratch = sandbox.make_scratch()
    driver = None
    try:
        candidate = scratch / "candidate.py"
        shutil.copyfile(source_path, candidate)
        # the fallback as root gives the child a uid of its own, which cannot read a cache under
        # /root: it gets a read-only copy in its scratch folder instead, without the held-out data
        # the parent scores with (which its own uid then cannot read in the cache either)
        hidden = scoring.hidden_paths(preset, cache_dir)
        child_cache = cache_dir
        if sandbox.probe_isolation()[0] == "fallback-uid":
            child_cache = sandbox.stage_readable(cache_dir, scratch, withhold=hidden)
        job = {
            "phase": phase,
            "candidate": str(candidate),
            "candidate_hash": base["candidate_hash"],
            "class_name": class_name,
            "preset": preset.model_dump(),
            "seed": base["seed"],
            "cache_dir": str(child_cache),
            "device": device,
            "baseline_params": baseline_params,
            "references": references or {},
            "extra_paths": [str(Path(p).expanduser().resolve()) for p in extra_paths or []],
            "result_path": str(scratch / "result.json"),
            "progress_path": str(scratch / "progress.jsonl"),
        }
        poll = _ProgressTail(scratch / "progress.jsonl", progress)
        if phase == "train":
            # the parent scores the run itself (scoring.py): the child trains and answers requests
            driver = scoring.start_driver(scratch, preset, base["seed"], cache_dir, **(checks or {}))
            job["oracle_dir"] = str(driver.folder)
            poll = scoring.chain_poll(poll, driver)
        (scratch / "job.json").write_text(json.dumps(job))
        limits = preset.limits
        timeout = limits.probe_timeout_s if phase == "probe" else limits.train_timeout_s
        threads = str(preset.num_threads)
        try:
            outcome = sandbox.run_sandboxed(
                [sys.executable, "-m", "archscout.evaluate.worker", str(scratch / "job.json")],
                scratch=scratch,
                limits=limits,
                timeout_s=timeout,
                result_name="result.json",
                # PASSIVE: idle OpenMP threads sleep instead of spinning; on a 2-core machine shared
                # with other work, spinning threads were descheduled at every barrier and a 2-thread
                # child ran 7x slower in wall time (and 6x more CPU) than with sleeping waits
                extra_env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE"},
                poll=poll,
                # the sandbox has a private /tmp: a cache placed there must be bound in explicitly
                ro_binds=[child_cache, *(Path(p) for p in job["extra_paths"])],
                hide=hidden,
            )
        except scoring.ScoringError as err:
            # raised by the poll: the child's tree is down already
            return failed_result(kind=err.kind, message=err.message, **base), 0.0, sandbox.probe_isolation()[0]
        result = _validate(outcome, base)
        if driver is not None:
            result = scoring.finish(driver, result, outcome.cpu_s, base)
        return result, outcome.wall_s, outcome.isolation
    finally:
        if driver is not None:
            scoring.stop(driver)
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def run_phase(
    phase: str,
    path: Path,
    preset: Preset,
    seed: int = 0,
    *,
    class_name: str | None = None,
    device: str = "cpu",
    cache_dir: Path | None = None,
    baseline_params: int | None = None,
    references: dict[str, dict] | None = None,
    progress: Progress | None = None,
    keep_scratch: bool = False,
    checks: dict | None = None,
    extra_paths: list[str] | None = None,
) -> RunResult:
    """One sandboxed phase ("probe" or "train") of one candidate file; never raises for a bad candidate.
    `checks`: options of the trained-weights causality checks (scoring.start_driver), e.g. more
    perturbed copies and other lengths for a re-check."""
    path = Path(path)
    preset = absolute_corpora(preset)
    base = {"candidate_hash": code_hash(path.read_text()), "preset": preset.name, "seed": seed}
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if phase == "train":
        prepare_tasks(preset, cache_dir)
    if progress:
        progress({"phase": phase})
    result, wall, isolation = _run_phase(
        phase, path, base, preset, class_name=class_name, cache_dir=cache_dir, device=device,
        baseline_params=baseline_params, references=references, progress=progress, keep_scratch=keep_scratch,
        checks=checks,
        extra_paths=extra_paths,
    )
    result.isolation = isolation
    result.wall_s[phase] = wall
    return result


def merge_phases(probed: RunResult, trained: RunResult) -> RunResult:
    """The training result carrying the probe reports and the probe phase's figures."""
    trained.probes = probed.probes
    trained.params = probed.params
    trained.class_name = trained.class_name or probed.class_name
    trained.wall_s = {**probed.wall_s, **trained.wall_s}
    trained.wall_s["total"] = sum(v for k, v in trained.wall_s.items() if k in ("probe", "train"))
    return trained


def evaluate_file(path: Path, preset: Preset, seed: int = 0, **options) -> RunResult:
    """Probe, then train, one candidate file in the sandbox. Never raises for a bad candidate."""
    started = time.perf_counter()
    probed = run_phase("probe", path, preset, seed, **options)
    if not probed.ok:
        probed.wall_s["total"] = time.perf_counter() - started
        return probed
    trained = run_phase("train", path, preset, seed, **options)
    result = merge_phases(probed, trained)
    result.wall_s["total"] = time.perf_counter() - started
    return result


@contextmanager
def source_file(code: str) -> Iterator[Path]:
    """Source text held in memory (from the study database) as a temporary candidate file."""
    with tempfile.TemporaryDirectory(prefix="archscout-cand-") as tmp:
        path = Path(tmp) / "candidate.py"
        path.write_text(code)
        yield path


def evaluate_source(code: str, preset: Preset, seed: int = 0, **options) -> RunResult:
    """`evaluate_file` for source text held in memory."""
    with source_file(code) as path:
        return evaluate_file(path, preset, seed, **options)
