"""Evaluations as Ray tasks: start or attach to a Ray cluster, run one sandboxed evaluation per task.

`RayPool.connect` starts Ray embedded on this machine (no address) or attaches to a running cluster
(`ray start --head` elsewhere); every check that can refuse (workers < 1, more workers than this
machine's CPUs for an embedded cluster, an address that does not answer, a cluster with too few
CPUs for one evaluation) happens there, before the study is opened, so bad input writes nothing.
`RayPool.evaluate` takes the loop's evaluation options (Loop._evaluate) and blocks the calling
driver thread on `ray.get`, which releases the GIL: a driver thread per in-flight experiment is
cheap. The task itself is `run_on_worker`: the same one-child `evaluate.runner.evaluate` the loop
runs in process (probes, then training), on whichever node Ray places it, asking for the preset's `num_threads` CPUs and a GPU
when the study's device is cuda (or auto on a cluster that has GPUs).

Faults: Ray re-runs a task whose worker process or node died (`max_retries`, bounded); when the
retries are spent the evaluation comes back as a failed run with kind `worker_lost`, so the
experiment fails with that reason instead of the driver stopping. A cancelled task (Ctrl-C, see
parallel/driver.py) raises `Cancelled`; the experiment stays open and resumes on the next run.

What is not here: scheduling experiments (parallel/driver.py). This module imports Ray at the top:
only `--workers N > 1` imports it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import ray
from ray import exceptions as rex

from archscout.config import Preset
from archscout.parallel import reaper
from archscout.records import FailureKind, RunResult, code_hash, failed_result

MAX_RETRIES = 2  # re-runs of an evaluation whose worker or node died, before `worker_lost`


class RayPoolError(RuntimeError):
    """A Ray setting that cannot work (one line for the CLI)."""


class Cancelled(RuntimeError):
    """The evaluation's task was cancelled (the driver is stopping); the experiment stays open."""


def local_cpus() -> int:
    """CPUs this process may use (the affinity mask: a container's or taskset's limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_on_worker(payload: dict) -> tuple[str, str | None]:
    """One evaluation (probes and training in one sandboxed child, evaluate.runner.evaluate) on a
    Ray worker. Returns the RunResult and the passed probe report, if any, as JSON: plain strings
    cross Ray's serialisation whatever pydantic version the nodes run. The driver commits `checked`
    from the report when the task returns (the worker has no database)."""
    from archscout.evaluate.runner import evaluate

    payload = dict(payload)
    preset = Preset.model_validate(payload.pop("preset"))
    code, seed = payload.pop("code"), payload.pop("seed")
    probed = payload.pop("probed", None)
    reports: list[RunResult] = []
    result = evaluate(code, preset, seed, probed=None if probed is None else RunResult.model_validate_json(probed),
                      on_checked=reports.append, **payload)
    return result.model_dump_json(), reports[0].model_dump_json() if reports else None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise RayPoolError unless something answers at `address` (host:port, or ray://host:port).

    `ray.init` retries an unreachable head for a minute or more, printing warnings; a plain TCP
    connect answers in seconds, before anything is written."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise RayPoolError(f"--ray-address expects HOST:PORT (the head's `ray start --head` port, 6379 by default); got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise RayPoolError(f"no Ray cluster answers at {address}: {err.strerror or err}") from None


class RayPool:
    """Up to `workers` evaluations at once on Ray; one instance per driver."""

    def __init__(self, workers: int, num_cpus: int, num_gpus: int, embedded: bool, max_retries: int = MAX_RETRIES):
        self.workers, self.num_cpus, self.num_gpus, self.embedded = workers, num_cpus, num_gpus, embedded
        self.max_retries = max_retries
        self._task = ray.remote(run_on_worker)
        self._lock = threading.Lock()
        self._inflight: dict = {}  # task ref -> phase
        self._closed = False
        self._reaper = None  # parallel/reaper.py's watchdog of an embedded cluster

    @classmethod
    def connect(cls, workers: int, preset: Preset, device: str = "auto", address: str | None = None,
                runtime_env: dict | None = None, max_retries: int = MAX_RETRIES) -> RayPool:
        """Start (no address) or attach to Ray; raise RayPoolError with one line when it cannot work."""
        if workers < 1:
            raise RayPoolError(f"--workers must be at least 1; got {workers}")
        threads = preset.num_threads
        if address is None and workers * threads > local_cpus():
            raise RayPoolError(
                f"{workers} workers x {threads} threads (preset {preset.name}) need {workers * threads} CPUs; "
                f"this machine has {local_cpus()}: use --workers {max(1, local_cpus() // threads)} or attach "
                "to a cluster with --ray-address")
        if address is not None:
            check_reachable(address)
        options = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
        if runtime_env:
            options["runtime_env"] = runtime_env
        watchdog = None
        try:
            if address is None:
                # an embedded cluster is this driver's: nothing of it may outlive a killed driver
                watchdog = reaper.start(os.getpid())
                # only the CPUs we may use, and no dashboard
                ray.init(num_cpus=local_cpus(), include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
        except Exception as err:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            _stop_reaper(watchdog)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise RayPoolError(f"cannot reach a Ray cluster at {address or 'this machine'}: {first}") from None
        total = ray.cluster_resources()
        if total.get("CPU", 0) < threads:
            ray.shutdown()
            raise RayPoolError(f"the Ray cluster at {address} has {total.get('CPU', 0):g} CPUs; one {preset.name} "
                               f"evaluation needs {threads}")
        gpus = 1 if device == "cuda" or (device == "auto" and total.get("GPU", 0) >= 1) else 0
        if gpus and total.get("GPU", 0) < 1:
            ray.shutdown()
            raise RayPoolError(f"device = cuda, but the Ray cluster at {address or 'this machine'} has no GPU")
        pool = cls(workers, threads, gpus, embedded=address is None, max_retries=max_retries)
        pool._reaper = watchdog
        return pool

    # -- one evaluation ---------------------------------------------------------------------------

    def evaluate(self, *, code: str, preset: Preset, seed: int, probed: RunResult | None = None,
                 **options) -> tuple[RunResult, RunResult | None]:
        """One evaluation as a Ray task, waited for with the GIL released: (result, the passed probe
        report or None). `options` are evaluate.runner.evaluate's (device, references, ...)."""
        phase = "train" if probed is not None else "evaluate"
        payload = dict(options, code=code, seed=seed, preset=preset.model_dump(mode="json"),
                       probed=None if probed is None else probed.model_dump_json())
        with self._lock:
            if self._closed:
                raise Cancelled("the driver is stopping")
            ref = self._task.options(
                num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries,
                retry_exceptions=False, name=f"archscout-{phase}",  # also the worker's process title
            ).remote(payload)
            self._inflight[ref] = phase
        try:
            result, report = ray.get(ref)
            return RunResult.model_validate_json(result), None if report is None else RunResult.model_validate_json(report)
        except rex.TaskCancelledError:
            raise Cancelled("the evaluation was cancelled") from None
        except (rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError, rex.OwnerDiedError,
                rex.ActorDiedError, rex.LocalRayletDiedError) as err:
            if self._closed:
                raise Cancelled("the driver is stopping") from None
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            return failed_result(
                candidate_hash=code_hash(code), preset=preset.name, seed=seed, kind=FailureKind.worker_lost,
                message=f"the Ray worker running the evaluation died {self.max_retries + 1} times: {first}",
            ), None
        finally:
            with self._lock:
                self._inflight.pop(ref, None)

    # -- the pool ---------------------------------------------------------------------------------

    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def phases_in_flight(self) -> list[str]:
        with self._lock:
            return list(self._inflight.values())

    def cancel_all(self) -> int:
        """Stop accepting evaluations and cancel the running ones (force: the worker process is
        killed, and with it the sandbox it started); return how many were cancelled."""
        with self._lock:
            self._closed = True
            refs = list(self._inflight)
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished
                pass
        return len(refs)

    def shutdown(self) -> None:
        """Leave the cluster; an embedded one stops with its workers (and their sandboxes)."""
        self.cancel_all()
        ray.shutdown()
        _stop_reaper(self._reaper)


def _stop_reaper(watchdog) -> None:
    # closing the lifeline is the signal; it then kills whatever of the cluster is left
    if watchdog is not None:
        watchdog.stdin.close()
        try:
            watchdog.wait(timeout=30)
        except Exception:  # noqa: BLE001 - it is in its own session and exits on its own
            pass
