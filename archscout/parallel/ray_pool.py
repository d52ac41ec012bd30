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

Messages while a task runs: the probe report (the loop commits `checked` with it while training
goes on) and the child's progress events (the live view's bars, the `during:train` crash point) go
from the task to the driver through one `ray.util.queue.Queue` per pool; a driver thread delivers
them to the evaluation's callbacks (`_Sink`). The result still carries the probe report, so a lost
message costs only its timing, never the `checked` commit.

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
import time
import uuid

import ray
from ray import exceptions as rex

from archscout.config import Preset
from archscout.evaluate.runner import OnChecked, Progress
from archscout.parallel import reaper
from archscout.records import FailureKind, RunResult, code_hash, failed_result

MAX_RETRIES = 2  # re-runs of an evaluation whose worker or node died, before `worker_lost`
MAILBOX_PUT_S = 30.0  # a worker waits this long for the message queue before it stops sending
END_WAIT_S = 60.0  # after a task returns, how long the driver waits for its last messages
PROGRESS_EVERY_S = 0.5  # a task forwards at most one training step per this (and always the last)


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


def run_on_worker(payload: dict, mailbox=None, token: str | None = None) -> tuple[str, str | None, bool]:
    """One evaluation (probes and training in one sandboxed child, evaluate.runner.evaluate) on a
    Ray worker. Returns the RunResult and the passed probe report, if any, as JSON (plain strings
    cross Ray's serialisation whatever pydantic version the nodes run), and whether every message
    reached the mailbox (else the driver does not wait for an `end` that never came).

    While it runs, its messages go to the driver through `mailbox` (a `ray.util.queue.Queue`), as
    (token, kind, body): `checked` with the probe report as soon as the probes pass (the driver
    commits the `checked` state then: the worker has no database), `progress` with the child's
    progress events (training steps at most every PROGRESS_EVERY_S, and the last), and `end` last. Each put waits for the queue, so the driver has every
    message of the task once it sees `end`. Messages are best effort: after a failed put this task
    sends no more, and the report returned with the result stands in for a lost `checked`."""
    from archscout.evaluate.runner import evaluate

    payload = dict(payload)
    preset = Preset.model_validate(payload.pop("preset"))
    code, seed = payload.pop("code"), payload.pop("seed")
    probed = payload.pop("probed", None)
    reports: list[RunResult] = []
    broken: list[BaseException] = []

    def send(kind: str, body) -> None:
        if mailbox is None or broken:
            return
        try:
            mailbox.put((token, kind, body), timeout=MAILBOX_PUT_S)
        except Exception as err:  # noqa: BLE001 - a full or lost queue must not fail the evaluation
            broken.append(err)

    def checked(report: RunResult) -> None:
        reports.append(report)
        send("checked", report.model_dump_json())

    last_step = [float("-inf")]

    def progress(event: dict) -> None:
        # a training bar needs a step now and then, not every one: each put is a round trip to the
        # queue, and the driver delivers every worker's messages on one thread
        if "steps" in event and event.get("step") != event.get("steps"):
            now = time.monotonic()
            if now - last_step[0] < PROGRESS_EVERY_S:
                return
            last_step[0] = now
        send("progress", event)

    result = evaluate(code, preset, seed, probed=None if probed is None else RunResult.model_validate_json(probed),
                      on_checked=checked, progress=progress, **payload)
    send("end", None)
    return result.model_dump_json(), reports[0].model_dump_json() if reports else None, mailbox is not None and not broken


class _Sink:
    """The driver's end of one evaluation's messages (delivered by RayPool's dispatcher thread)."""

    def __init__(self, on_checked: OnChecked | None, progress: Progress | None):
        self.on_checked, self.progress = on_checked, progress
        self.lock = threading.Lock()
        self.checked = False  # on_checked was called (a retried task reports its probes again)
        self.ended = threading.Event()
        self.error: BaseException | None = None  # raised on the evaluation's thread

    def check(self, report: RunResult) -> None:
        with self.lock:
            if self.checked or self.on_checked is None:
                return
            self.checked = True
        self.on_checked(report)

    def deliver(self, kind: str, body) -> None:
        if kind == "end":
            self.ended.set()
            return
        if self.error is not None:
            return
        try:
            if kind == "checked":
                self.check(RunResult.model_validate_json(body))
            elif kind == "progress" and self.progress is not None and isinstance(body, dict):
                self.progress(body)
        except Exception as err:  # noqa: BLE001 - e.g. the store refused the commit: the caller sees it
            self.error = err


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
        self._mailbox = None  # the tasks' messages to the driver (open_mailbox)
        self._sinks: dict[str, _Sink] = {}  # evaluation token -> where its messages go
        self._dispatcher: threading.Thread | None = None

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
        pool.open_mailbox()
        return pool

    # -- messages from running tasks --------------------------------------------------------------

    def open_mailbox(self) -> None:
        """Start the queue the tasks send their messages to, and the driver thread that delivers
        them. The queue is Ray's documented one (`ray.util.queue.Queue`, a small actor); it asks
        for no CPU, so it never takes an evaluation's slot."""
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # on the driver's node when it is one (soft: anywhere else if not): a worker node removed
        # from the cluster must not take the queue with it
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self._mailbox = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self._dispatcher = threading.Thread(target=self._dispatch, name="archscout-mailbox", daemon=True)
        self._dispatcher.start()

    def _dispatch(self) -> None:
        from ray.util.queue import Empty

        while not self._closed:
            try:
                token, kind, body = self._mailbox.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # noqa: BLE001 - the queue's actor is gone (shutdown): results still come
                if not self._closed:
                    logging.getLogger(__name__).warning("the evaluations' message queue stopped answering")
                return
            with self._lock:
                sink = self._sinks.get(token)
            if sink is not None:  # else an evaluation the driver stopped waiting for
                sink.deliver(kind, body)

    # -- one evaluation ---------------------------------------------------------------------------

    def evaluate(self, *, code: str, preset: Preset, seed: int, probed: RunResult | None = None,
                 on_checked: OnChecked | None = None, progress: Progress | None = None, **options) -> RunResult:
        """One evaluation as a Ray task, waited for with the GIL released. `on_checked(report)` and
        `progress(event)` are called, as in evaluate.runner.evaluate, while the task runs (from the
        mailbox's thread); a probe report that only came back with the result is handed over before
        this returns. `options` are evaluate.runner.evaluate's (device, references, ...)."""
        phase = "train" if probed is not None else "evaluate"
        payload = dict(options, code=code, seed=seed, preset=preset.model_dump(mode="json"),
                       probed=None if probed is None else probed.model_dump_json())
        token, sink = uuid.uuid4().hex, _Sink(on_checked, progress)
        with self._lock:
            if self._closed:
                raise Cancelled("the driver is stopping")
            ref = self._task.options(
                num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries,
                retry_exceptions=False, name=f"archscout-{phase}",  # also the worker's process title
            ).remote(payload, self._mailbox, token)
            self._inflight[ref] = phase
            self._sinks[token] = sink
        try:
            result, report, delivered = ray.get(ref)
            if delivered:
                # the task's last messages (its training's end) may still be on their way to us
                deadline = time.monotonic() + END_WAIT_S
                while not sink.ended.wait(0.2) and self._dispatcher.is_alive() and time.monotonic() < deadline:
                    pass
            if sink.error is not None:
                raise sink.error
            if report is not None:
                sink.check(RunResult.model_validate_json(report))  # no-op when it came through the mailbox
            if sink.error is not None:
                raise sink.error
            return RunResult.model_validate_json(result)
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
            )
        finally:
            with self._lock:
                self._inflight.pop(ref, None)
                self._sinks.pop(token, None)

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
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)  # it stops within its half-second poll of the queue
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
