"""Entry point of the sandboxed child: `python -m archscout.evaluate.worker JOB.json`.

This is the only place candidate code is imported. The job file (written by the parent into the
scratch directory) lists the phases to run, in one process: `probe` (load the file, run the probes)
and `train` (load it afresh, train on every task of the preset). When both run, the probe result is
reported on the progress channel as soon as the probes pass (the parent commits the `checked`
state from it) and training follows in the same process; a probe failure ends the child with that
failure as its result. The child writes one `RunResult` as JSON to the job's result path and
progress events as JSON lines to its progress path; the parent validates both. Every failure the
candidate can cause is classified here; what the child cannot report (timeouts, signals, memory
kills) the sandbox classifies from outside.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from pydantic import BaseModel, Field

from archscout.config import Preset
from archscout.records import FailureKind, RunResult, failed_result

PHASES = ("probe", "train")


class Job(BaseModel):
    phases: list[str]  # "probe", "train" or both, in that order
    candidate: str  # path of the candidate file inside the scratch directory
    candidate_hash: str
    class_name: str | None = None
    preset: Preset
    seed: int
    cache_dir: str
    device: str = "cpu"
    baseline_params: int | None = None
    references: dict[str, dict] = Field(default_factory=dict)  # task name -> TaskReference JSON
    extra_paths: list[str] = Field(default_factory=list)  # study's candidate_paths, first on sys.path
    result_path: str
    progress_path: str
    # the parent scores the run (evaluate/scoring.py): the child only answers forward requests here
    oracle_dir: str | None = None


def _write_json(path: str, payload: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(payload)
    os.replace(tmp, path)


class _ProgressWriter:
    def __init__(self, path: str, phase: str):
        self.fh = open(path, "a", buffering=1)
        self.phase = phase

    def __call__(self, event: dict) -> None:
        self.fh.write(json.dumps({"phase": self.phase, "t": time.time(), **event}) + "\n")


def run_job(job: Job, progress: _ProgressWriter) -> RunResult:
    # imported here so that a broken torch install is reported as a result, not an import crash
    import torch

    from archscout.records import runtime_versions

    torch.set_num_threads(job.preset.num_threads)
    base = dict(candidate_hash=job.candidate_hash, preset=job.preset.name, seed=job.seed, versions=runtime_versions())
    if "probe" in job.phases:
        probed = probe(job, base)
        if not probed.ok or "train" not in job.phases:
            return probed
        # the parent commits `checked` from this line, while training goes on
        progress({"phase": "probe", "probed": json.loads(probed.model_dump_json())})
    return train(job, base, progress)


def probe(job: Job, base: dict) -> RunResult:
    from archscout.check.probes import fatal_log_tail, first_fatal, run_probes
    from archscout.evaluate.candidate_env import prepare_for_job
    from archscout.space.contract import ContractError, load_mixer_class

    started = time.perf_counter()
    base = dict(base, runtime=prepare_for_job(job, "probe"))  # compat kernels, no compile, fp64-safe
    try:
        mixer_cls = load_mixer_class(Path(job.candidate), job.class_name)
    except ContractError as err:
        return failed_result(kind=err.kind, message=err.message, log_tail=err.log_tail, **base)
    base["class_name"] = mixer_cls.__name__
    reports = run_probes(mixer_cls, job.preset.probes, job.preset.chunk_size, job.baseline_params)
    wall = {"probe": time.perf_counter() - started}
    fatal = first_fatal(reports)
    if fatal is not None:
        kind, message = fatal
        log_tail = fatal_log_tail(reports)
        return failed_result(kind=kind, message=message, log_tail=log_tail, probes=reports, wall_s=wall, **base)
    params = next((r.details.get("params") for r in reports if r.name == "param_budget"), None)
    return RunResult(status="ok", probes=reports, wall_s=wall, params=params, **base)


def train(job: Job, base: dict, progress: _ProgressWriter) -> RunResult:
    import torch

    from archscout.evaluate.candidate_env import prepare_for_job
    from archscout.evaluate.oracle import ChildOracle
    from archscout.evaluate.train import MonitorStop, TaskReference, pick_device, train_task
    from archscout.space.contract import ContractError, load_mixer_class

    started = time.perf_counter()
    # fla or compat, torch.compile and dtype policy for training; the candidate is imported afresh
    base = dict(base, runtime=prepare_for_job(job, "train"))
    try:
        mixer_cls = load_mixer_class(Path(job.candidate), job.class_name)
    except ContractError as err:
        return failed_result(kind=err.kind, message=err.message, log_tail=err.log_tail, **base)
    base["class_name"] = mixer_cls.__name__
    device = pick_device(job.device)
    progress.phase = "train"
    progress({})  # training starts (the progress bars mark the probes passed)
    oracle = ChildOracle(Path(job.oracle_dir)) if job.oracle_dir else None
    tasks = {}
    try:
        for spec in job.preset.tasks:
            ref = job.references.get(spec.name)
            reference = TaskReference.model_validate(ref) if ref else None
            tasks[spec.name] = train_task(
                mixer_cls, spec, job.preset, job.seed, Path(job.cache_dir), device, reference, progress, oracle
            )
            # if the time limit kills the child later, the parent still finds the finished tasks
            partial = failed_result(kind=FailureKind.timeout, message=f"time limit hit after {', '.join(tasks)}",
                                    tasks=tasks, device=device.type, **base)
            _write_json(job.result_path, partial.model_dump_json())
    except MonitorStop as stop:
        return failed_result(kind=stop.kind, message=stop.message, tasks=tasks, device=device.type, **base)
    except ContractError as err:
        return failed_result(kind=err.kind, message=err.message, log_tail=err.log_tail, tasks=tasks, **base)
    except torch.OutOfMemoryError as err:
        return failed_result(kind=FailureKind.memory, message=f"out of memory: {err}", tasks=tasks, **base)
    except MemoryError:
        return failed_result(kind=FailureKind.memory, message="MemoryError during training", tasks=tasks, **base)
    except Exception as err:  # noqa: BLE001 - any other error raised by candidate code while training
        return failed_result(
            kind=FailureKind.forward_error,
            message=f"training raised {type(err).__name__}: {err}",
            log_tail="".join(traceback.format_exception(err)[-12:]),
            tasks=tasks,
            **base,
        )
    return summarise(tasks, base, device.type, time.perf_counter() - started)


def summarise(tasks: dict, base: dict, device: str, wall: float) -> RunResult:
    """Headline numbers: LM val loss, benchmark = mean final accuracy over synthetic tasks."""
    lm = next((t for t in tasks.values() if t.kind == "lm"), None)
    synthetic = [t.accuracy for t in tasks.values() if t.kind == "synthetic" and t.accuracy is not None]
    return RunResult(
        status="ok",
        tasks=tasks,
        val_loss=lm.val_loss if lm else None,
        benchmark=sum(synthetic) / len(synthetic) if synthetic else None,
        total_params=lm.params if lm else None,
        tokens_per_s=lm.tokens_per_s if lm else None,
        wall_s={"train": wall},
        device=device,
        **base,
    )


def main(argv: list[str]) -> int:
    job = Job.model_validate_json(Path(argv[1]).read_text())
    if not job.phases or [p for p in PHASES if p in job.phases] != job.phases:
        raise SystemExit(f"phases must be {' and/or '.join(PHASES)} in that order, not {job.phases!r}")
    try:
        result = run_job(job, _ProgressWriter(job.progress_path, job.phases[0]))
    except MemoryError:
        result = failed_result(
            candidate_hash=job.candidate_hash, preset=job.preset.name, seed=job.seed,
            kind=FailureKind.memory, message="MemoryError",
        )
    _write_json(job.result_path, result.model_dump_json())
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    # leave without running atexit hooks or finalisers: candidate code may have registered some to
    # rewrite the result file (the parent scores the run itself anyway, see scoring.py)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
