"""Parent side of an evaluation: candidate source in, validated `RunResult` out — `evaluate`.

Prepares the task data (tokenizer, corpus cache) in the parent, where no candidate code runs, then
runs ONE sandboxed worker child that probes the candidate and, when the probes pass, trains it in
the same process (one Python + torch start per evaluation). The child reports the probe result on
its progress channel as soon as the probes pass; the parent validates it and hands it to the
caller's `on_checked` (the loop commits the `checked` state with it) while training goes on. The
probes are held to the preset's probe time limit by the parent, training to the rest of the
child's limit (probe + train limits). A probe failure ends the child with that failure. A caller
that already holds a passed probe report for the same file (a study resumed in `checked`) passes it
as `probed` and the child only trains.

The child's result file is validated: a missing, corrupt or mismatched result becomes an
`invalid_result` failure. During training the parent scores the run itself (scoring.py): every
number that enters fitness is computed here, from logits the child returns for held-out batches it
sees only one at a time. The parent never imports candidate code.
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
OnChecked = Callable[[RunResult], None]  # called with the passed probe report


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


class ProbeStop(scoring.ScoringError):
    """Raised from the poll about the probe phase: the child's tree is taken down with this failure."""


class _ProbeWatch:
    """The parent's view of the probe phase of a running child: takes the probe report from the
    progress lines, validates it against the job, hands it to `on_checked`, and stops a child whose
    probes are not done within the preset's probe time limit."""

    def __init__(self, base: dict, limit_s: float | None, on_checked: OnChecked | None, sink: Progress | None):
        self.base, self.limit_s, self.on_checked, self.sink = base, limit_s, on_checked, sink
        self.started = time.monotonic()
        self.report: RunResult | None = None
        self.at: float | None = None  # when the report arrived, on the parent's clock

    def event(self, event: dict) -> None:
        if "probed" not in event:
            if self.sink is not None:
                self.sink(event)
            return
        if self.report is not None:
            raise ProbeStop(FailureKind.invalid_result, "the worker reported its probes twice")
        try:
            report = RunResult.model_validate(event["probed"])
        except ValidationError as err:
            raise ProbeStop(FailureKind.invalid_result, f"corrupt probe report: {err.errors()[0]['msg']}") from None
        mismatch = [k for k in ("candidate_hash", "preset", "seed") if getattr(report, k) != self.base[k]]
        if mismatch or not report.ok:
            raise ProbeStop(FailureKind.invalid_result, "the probe report does not match the job")
        self.report, self.at = report, time.monotonic()
        if self.on_checked is not None:
            self.on_checked(report)

    def deadline(self) -> None:
        if self.report is None and self.limit_s is not None and time.monotonic() - self.started > self.limit_s:
            raise ProbeStop(FailureKind.timeout, f"wall-clock timeout: the probes were not done after {self.limit_s:.1f} s")


def _job(phases: list[str], candidate: Path, scratch: Path, child_cache: Path, preset: Preset, base: dict,
         **options) -> dict:
    return {
        "phases": phases,
        "candidate": str(candidate),
        "candidate_hash": base["candidate_hash"],
        "class_name": options["class_name"],
        "preset": preset.model_dump(),
        "seed": base["seed"],
        "cache_dir": str(child_cache),
        "device": options["device"],
        "baseline_params": options["baseline_params"],
        "references": options["references"] or {},
        "extra_paths": [str(Path(p).expanduser().resolve()) for p in options["extra_paths"] or []],
        "result_path": str(scratch / "result.json"),
        "progress_path": str(scratch / "progress.jsonl"),
    }


def _run_child(phases: list[str], source_path: Path, base: dict, preset: Preset, watch: _ProbeWatch, *,
               cache_dir: Path, keep_scratch: bool, checks: dict | None, **options) -> tuple[RunResult, float, str]:
    """The one sandboxed child of an evaluation: (validated result, wall seconds, isolation level)."""
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
        job = _job(phases, candidate, scratch, child_cache, preset, base, **options)
        tail = _ProgressTail(scratch / "progress.jsonl", watch.event)

        def poll() -> None:
            tail()
            watch.deadline()

        if "train" in phases:
            # the parent scores the run itself (scoring.py): the child trains and answers requests
            driver = scoring.start_driver(scratch, preset, base["seed"], cache_dir, **(checks or {}))
            job["oracle_dir"] = str(driver.folder)
            poll = scoring.chain_poll(poll, driver)
        (scratch / "job.json").write_text(json.dumps(job))
        limits = preset.limits
        timeout = (limits.probe_timeout_s if "probe" in phases else 0) + (limits.train_timeout_s if "train" in phases else 0)
        threads = str(preset.num_threads)
        watch.started = time.monotonic()  # the probes' clock starts with the child
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
            tail()  # lines written after the last poll (a training failure right after the probes)
        except scoring.ScoringError as err:
            # raised by the poll: the child's tree is down already
            wall = time.monotonic() - watch.started
            return failed_result(kind=err.kind, message=err.message, **base), wall, sandbox.probe_isolation()[0]
        result = _validate(outcome, base)
        if driver is not None and (watch.report is not None or "probe" not in phases):
            result = scoring.finish(driver, result, outcome.cpu_s, base)
        return result, outcome.wall_s, outcome.isolation
    finally:
        if driver is not None:
            scoring.stop(driver)
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def evaluate(candidate: Path | str, preset: Preset, seed: int = 0, **options) -> RunResult:
    """Probe, then train, one candidate in one sandboxed child; never raises for a bad candidate.

    `candidate`: a file (Path) or source text (str, e.g. from the study database). Options:
    `probed` — a passed probe report of the same file and preset (stored when the experiment was
    checked): the child only trains and the result carries that report; `probe_only` — stop after
    the probes; `on_checked(report)` — called with the validated probe report as soon as the probes
    pass (while the child trains on); `progress(event)` — the child's progress events; `checks` —
    options of the trained-weights causality checks (scoring.start_driver), e.g. more perturbed
    copies and other lengths for a re-check; `class_name`, `device`, `cache_dir`,
    `baseline_params`, `references`, `extra_paths`, `keep_scratch`."""
    if isinstance(candidate, str):
        with source_file(candidate) as path:
            return _evaluate_file(path, preset, seed, **options)
    return _evaluate_file(Path(candidate), preset, seed, **options)


def _evaluate_file(
    path: Path,
    preset: Preset,
    seed: int = 0,
    *,
    probed: RunResult | None = None,
    probe_only: bool = False,
    on_checked: OnChecked | None = None,
    progress: Progress | None = None,
    class_name: str | None = None,
    device: str = "cpu",
    cache_dir: Path | None = None,
    baseline_params: int | None = None,
    references: dict[str, dict] | None = None,
    keep_scratch: bool = False,
    checks: dict | None = None,
    extra_paths: list[str] | None = None,
) -> RunResult:
    started = time.perf_counter()
    preset = absolute_corpora(preset)
    base = {"candidate_hash": code_hash(path.read_text()), "preset": preset.name, "seed": seed}
    if probed is not None and not (probed.ok and probed.candidate_hash == base["candidate_hash"]
                                   and probed.preset == preset.name):
        probed = None  # a report of another file or preset says nothing about this one: probe again
    phases = ["train"] if probed is not None else ["probe"] if probe_only else ["probe", "train"]
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if "train" in phases:
        prepare_tasks(preset, cache_dir)
    if progress:
        progress({"phase": phases[0]})
    limit = preset.limits.probe_timeout_s if phases == ["probe", "train"] else None
    watch = _ProbeWatch(base, limit, on_checked, progress)
    result, wall, isolation = _run_child(
        phases, path, base, preset, watch, cache_dir=cache_dir, keep_scratch=keep_scratch, checks=checks,
        class_name=class_name, device=device, baseline_params=baseline_params, references=references,
        extra_paths=extra_paths,
    )
    result.isolation = isolation
    if phases == ["probe"]:
        if result.ok and on_checked is not None:
            on_checked(result)
        result.wall_s = {"probe": wall}
    elif probed is None and watch.report is None:
        if result.ok or result.tasks:
            result = failed_result(kind=FailureKind.invalid_result,
                                   message="the worker trained without reporting its probes", **base)
            result.isolation = isolation
        result.wall_s = {"probe": wall}  # the child ended before its probes passed
    else:
        report = probed or watch.report
        result.probes, result.params = report.probes, report.params
        result.class_name = result.class_name or report.class_name
        probe_s = report.wall_s.get("probe", 0.0) if probed is not None else watch.at - watch.started
        result.wall_s = {"probe": probe_s, "train": wall - (0.0 if probed is not None else probe_s)}
    result.wall_s["total"] = time.perf_counter() - started
    return result

@contextmanager
def source_file(code: str) -> Iterator[Path]:
    """Source text held in memory (from the study database) as a temporary candidate file."""
    with tempfile.TemporaryDirectory(prefix="archscout-cand-") as tmp:
        path = Path(tmp) / "candidate.py"
        path.write_text(code)
        yield path
