"""`archscout run --workers N`: up to N experiments in flight, their evaluations as Ray tasks.

The driver keeps all of the loop's logic: it samples, proposes, scores, analyses and updates the
pool with the same Loop methods as the serial run, and the database stays the only source of truth.
Each in-flight experiment runs `Loop.run_experiment` on a driver thread; only its evaluation leaves
the process (Loop._evaluate -> RayPool.evaluate, which waits on `ray.get` with the GIL released).
Steady state is asynchronous: as soon as one experiment finishes, the next one is sampled from the
pool as it is then, and the experiment row records that pool version (Loop.sample).

Sampling happens on the driver's main thread only, so experiment numbers and the sampling rng
follow the same order as a serial run. What several threads share is made safe here, without
changing loop.py: the motivation index (read and extended by proposals) and the events sink sit
behind a lock, and `finish` (which may re-rank the pool) runs one at a time.

Ladder studies: a promotion batch is decided on the main thread when due (Loop.after ->
Ladder.step, which hands it to `_take_batch` instead of running it), and its runs (more seeds at a
rung, the next rung, the rung's baseline seeds, the top rung's verification seeds; ladder.BatchWork)
take free slots before new experiments, which go on being sampled in the others. Each run commits
on the main thread as it returns; the batch's verification decision and `done` mark follow its
last run. A kill -9 leaves the batch open with the finished runs stored: the next run continues it
without training any of them again. After the last experiment the ladder drains the same way.

Stopping: an LLM budget reached stops sampling, lets the in-flight experiments end and then reports
the budget; any other error, and Ctrl-C, cancels the in-flight Ray tasks (`ray.cancel`, which kills
their worker processes and so their sandboxes) and leaves the experiments open: their claims are
released (Loop.run) so the next `archscout run` resumes them at once.

What is not here: Ray itself (parallel/ray_pool.py); claiming experiments (store/claims.py).
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

DRAIN_MAX = 100  # batches decided after the last experiment, as Ladder.drain's bound


class _Locked:
    """An object whose method calls hold one lock (the loop's motivation index, shared by threads)."""

    def __init__(self, target, lock: threading.RLock):
        self._target, self._lock = target, lock

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return call


def _serialised(fn, lock: threading.RLock):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        with lock:
            return fn(*args, **kwargs)

    return call


class ParallelDriver:
    """Runs a Loop's experiments N at a time; install with `attach(loop)` before `loop.run()`."""

    def __init__(self, pool, workers: int | None = None):
        self.pool = pool
        self.workers = workers or pool.workers
        self.loop = None
        self.started_at = time.monotonic()
        self.finished = 0  # experiments this driver carried to done or failed
        self.batch = None  # ladder.BatchWork of the open promotion batch, if any

    def attach(self, loop) -> None:
        from archscout.store.claims import this_process_owner

        self.loop = loop
        # the owner id carries the worker count, so `status` can tell busy from idle slots
        loop.claims.owner = this_process_owner(self.workers)
        loop.remote = self.pool.evaluate
        loop.scheduler = self.run
        lock = threading.RLock()
        loop.events = _serialised(loop.events, lock)
        # pool re-ranking reads the finished count and writes the next version: one finish at a time
        loop.finish = _serialised(loop.finish, threading.RLock())

    def _workers_event(self, running: int) -> None:
        hours = max(time.monotonic() - self.started_at, 1e-9) / 3600
        self.loop.events({"stage": "workers", "busy": running, "idle": self.workers - running,
                          "of": self.workers, "in_flight": self.pool.in_flight(),
                          "per_hour": self.finished / hours if self.finished else None})

    def run(self, budget: int, deadline: float | None) -> None:
        loop = self.loop
        # built once, on this thread, then shared behind a lock
        loop.motivations = _Locked(loop._motivation_index(), threading.RLock())
        queue = loop.claims.claim_open()
        if loop.ladder.enabled:
            loop.ladder.runner = self._take_batch
            loop.ladder.step(loop.experiments_counted())  # a promotion batch a kill interrupted
        running: dict = {}  # future -> ("exp", Experiment) or ("ladder", ladder.LadderRun)
        stop_reason: BaseException | None = None
        sampling = True  # False once the budget, the time or a stopping rule said stop
        drained = 0
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="archscout-exp") as threads:
            try:
                while True:
                    if self.batch is not None and self.batch.done() and stop_reason is None:
                        # verification decides here, on the main thread, with its runs all stored
                        self.batch.finish()
                        self.batch = None
                        if sampling:
                            loop.ladder.step(loop.experiments_counted())  # the next one may be due
                    while len(running) < self.workers and stop_reason is None:
                        # a decided batch's runs go first: they were due before any new experiment
                        job = self.batch.take() if self.batch is not None else None
                        if job is not None:
                            running[threads.submit(self.batch.evaluate, job)] = ("ladder", job)
                            continue
                        if queue:
                            exp = queue.pop(0)
                            loop.events({"stage": "resume", "seq": exp.seq, "state": exp.state})
                        elif sampling and (loop.experiments_counted() < budget
                                           and (deadline is None or time.monotonic() <= deadline)
                                           and not loop.stopper.check()):
                            exp = loop.sample()
                            loop.events({"stage": "start", "seq": exp.seq})
                        else:
                            sampling = False
                            break
                        running[threads.submit(loop.run_experiment, exp)] = ("exp", exp)
                    self._workers_event(len(running))
                    if not running:
                        if stop_reason is None and self._drain_step(drained):
                            drained += 1
                            continue
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        kind, what = running.pop(future)
                        if kind == "ladder":
                            self.batch.record(what, future.result())
                        else:
                            stop_reason = self._finished(future, budget) or stop_reason
            except BaseException:
                # Ctrl-C or a store/sandbox error: nothing more starts, the running tasks are killed
                self.pool.cancel_all()
                for future in running:
                    future.cancel()
                raise
        if stop_reason is not None:
            raise stop_reason
        # Loop.wind_down without its serial drain (done above, batch by batch on the workers)
        loop.stopped_by = loop.stopped_by or loop.stopper.reason

    def _take_batch(self, batch: dict) -> None:
        """Ladder.runner: schedule a decided (or resumed) batch's runs; the open batch is handed
        over again on each `step` until it is done, and is taken once."""
        if self.batch is None or self.batch.number != batch["batch"]:
            self.batch = self.loop.ladder.work(batch)

    def _drain_step(self, drained: int) -> bool:
        """With nothing left running or to sample: the ladder's drain (Loop.wind_down's), one batch
        at a time; True when a batch with runs to do was decided."""
        loop = self.loop
        if not loop.ladder.enabled or loop.stopper.out_of_compute() or drained >= DRAIN_MAX:
            return False
        batch = loop.ladder.step(loop.experiments_counted(), force=True)
        if batch is None or not batch["plan"]:
            if self.batch is not None:
                self.batch.finish()  # the last, empty batch is stored done, as in the serial drain
                self.batch = None
            return False
        return True

    def _finished(self, future, budget: int) -> BaseException | None:
        """Report one finished experiment; return the LLM budget error that stops sampling, if any."""
        from archscout.agents.base import BudgetExhausted

        loop = self.loop
        try:
            exp = future.result()
        except BudgetExhausted as err:
            # like the serial loop: this experiment stays open, the others in flight may finish
            return err
        self.finished += 1
        # on this (the main) thread, as in the serial loop: the verification pass and the decision
        # of a due ladder batch run here (its runs then go in the queue) while the others go on
        loop.after(exp)
        return None
