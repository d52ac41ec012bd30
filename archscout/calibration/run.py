"""Running a calibration: every panel member x seed x preset through the ordinary evaluation path.

Each (member, preset, seed) is one `archscout.evaluate.runner.evaluate` call, exactly as a
search candidate is evaluated (probes, then training, in the sandbox); its result is committed to
the calibration store at once and never re-run. A member that fails its probes stops the
calibration with `CalibrationError` (the panel is then not usable), its failed row kept for the
record. Summarising lives in summary.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from archscout.calibration.panel import Member, Panel
from archscout.calibration.store import CalibrationStore
from archscout.config import Preset
from archscout.records import RunResult, code_hash

Progress = Callable[[dict], None]

# Bumped when the evaluation path changes what a stored run's numbers mean, so that a resumed
# calibration never mixes runs measured two ways. 2: the parent computes the scored numbers from a
# held-out set the child never sees (issue 12); version-1 rows were scored by the child itself and
# measured MQAR on another test set (DeltaNet at nano, seed 0: accuracy 0.874 then, 0.863 now).
# 3: the LM's loss on associative-recall hits is measured; version-2 rows lack it, and a calibration
# mixing the two would compare that metric over some of the seeds only.
EVALUATION_VERSION = 3


class CalibrationError(RuntimeError):
    """The calibration cannot continue (a member fails its probes); the message is one line."""


@dataclass
class Job:
    member: Member
    preset: Preset
    seed: int


def member_hashes(panel: Panel) -> dict[str, str]:
    return {m.name: code_hash(m.path.read_text()) for m in panel.members}


# Fields of a preset that do not change what an evaluation measures: editing the description or
# the search's pool cadence must not re-run hours of calibration.
_NOT_MEASURED = {"description", "pool"}


def run_key(source_hash: str, preset: Preset) -> str:
    """What a stored run is valid for: the member's source, the preset's definition (tasks, budgets,
    model sizes, threads, limits; not its description or pool cadence) and the evaluation version.
    Re-sizing a preset or changing how runs are scored makes the old rows stale instead of silently
    reused under the same preset name."""
    material = f"{source_hash}|{preset.model_dump_json(exclude=_NOT_MEASURED)}|v{EVALUATION_VERSION}"
    return code_hash(material)


def preset_keys(hashes: dict[str, str], preset: Preset) -> dict[str, str]:
    return {member: run_key(h, preset) for member, h in hashes.items()}


def plan(panel: Panel, presets: list[Preset], seeds: int) -> list[Job]:
    """Every job in run order: preset by preset, seed-major, so that an interrupted calibration
    already has every member on its first seeds."""
    return [Job(m, p, s) for p in presets for s in range(seeds) for m in panel.members]


def pending(jobs: list[Job], store: CalibrationStore, hashes: dict[str, str]) -> list[Job]:
    return [j for j in jobs if not store.done(j.member.name, j.preset.name, j.seed, run_key(hashes[j.member.name], j.preset))]


def evaluate_job(job: Job, cache_dir: Path | None = None, progress: Progress | None = None) -> RunResult:
    from archscout.evaluate.runner import evaluate

    options = {"progress": progress}
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    result = evaluate(Path(job.member.path), job.preset, job.seed, **options)
    result.candidate_name = job.member.name
    return result


def probe_failure(result: RunResult) -> str | None:
    """One line saying why the probe phase failed (the first failed fatal probe, or the failure
    itself when the file did not even load), or None when the run got past the probes."""
    if result.ok or "train" in result.wall_s:
        return None  # a training failure is a measurement, counted per member by the summary
    reason = None
    for report in result.probes:
        if not report.passed and report.details.get("fatal") is not False:
            reason = f"{report.name}: {report.reason}"
            break
    if reason is None and result.failure is not None:
        reason = f"{result.failure.kind.value}: {result.failure.message}"
    if reason is None:
        return None
    # one line whatever the probe wrote (a reason may quote a multi-line traceback)
    reason = " ".join(reason.split())
    return reason if len(reason) <= 240 else reason[:239] + "…"


def run_jobs(
    jobs: list[Job],
    store: CalibrationStore,
    *,
    cache_dir: Path | None = None,
    on_start: Callable[[Job], None] | None = None,
    on_done: Callable[[Job, RunResult], None] | None = None,
    progress: Progress | None = None,
) -> None:
    for job in jobs:
        if on_start:
            on_start(job)
        result = evaluate_job(job, cache_dir, progress)
        # keyed by the source actually evaluated (the file could change between planning and now)
        store.add(job.member.name, result, run_key(result.candidate_hash, job.preset))
        if on_done:
            on_done(job, result)
        reason = probe_failure(result)
        if reason:
            raise CalibrationError(f"panel member '{job.member.name}' fails its probes ({reason}); fix or remove it")
