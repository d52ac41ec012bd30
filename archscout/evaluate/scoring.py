"""Scored numbers computed by the parent, and causality checked on the trained weights.

The sandboxed child trains the candidate; at each evaluation point it becomes an oracle (oracle.py)
that maps token batches to logits. This module is the other end, a thread in the parent (trusted)
process: it holds the held-out data and the targets, sends the held-out inputs batch by batch,
computes the validation loss (also split into associative-recall hits and the other tokens) and
the accuracies itself, and mixes into the scored batches perturbed copies (the same batch with every
token after a random position t replaced by another real sequence's) in a random order. A copy has
the shape, dtype and call path of a scored batch, so the child cannot tell the two apart from the
call; outputs at positions <= t must agree with the unperturbed batch's to within `REL_TOL`
(float32 round-off; honest mixers agree exactly on CPU), or the run fails with `leak` and the
evidence (task, step, position, size of the difference).

The synthetic tasks' test sets are drawn from a key the child does not get (`heldout_key`, in a
folder the sandbox hides under bubblewrap), so the child cannot regenerate them from the seed.

What is not here: the file protocol (oracle.py), training (train.py), the decision to quarantine a
run whose loss is implausibly good (quarantine.py). A child that remembers earlier inputs and
answers a repeated prefix from memory is not detected (see the README's threat model).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archscout.config import Preset, TaskSpec
from archscout.evaluate import oracle
from archscout.evaluate.tasks import IGNORE, _synthetic_generator, build_task, lm
from archscout.records import CurvePoint, FailureKind, RunResult

ORACLE_BATCH = 16  # sequences per request
CHECKS_PER_ROUND = 2  # perturbed copies at an intermediate evaluation
CHECKS_FINAL = 4  # and at the final one, whose numbers are scored
REL_TOL = 1e-4  # allowed |difference| relative to max(1, max |logit|) at positions <= t
POLL_S = 0.002  # waiting for logits (a round's requests come back fast)
READY_POLL_S = 0.02  # waiting for the next round (training runs meanwhile: poll lightly)


class ScoringError(Exception):
    def __init__(self, kind: FailureKind, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


def heldout_key(cache_dir: Path) -> int:
    """A random key, made once per cache, that seeds the synthetic test sets; the parent reads it,
    the child never gets it (the sandbox hides `heldout_dir` under bubblewrap)."""
    folder = heldout_dir(cache_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "key"
    if not path.exists():
        tmp = folder / f".key.{os.getpid()}"
        tmp.write_text(str(secrets.randbits(63)))
        os.replace(tmp, path) if not path.exists() else tmp.unlink()
    return int(path.read_text().strip())


def heldout_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "heldout"


@dataclass
class HeldOut:
    """One task's scored inputs and targets, and a source of other real sequences."""

    spec: TaskSpec
    x: torch.Tensor  # [N, L]
    y: torch.Tensor  # [N, L]
    vocab_size: int
    donor: object  # (rng, rows) -> int64 [rows, L]
    ar_hit: torch.Tensor | None = None  # lm: [N, L] bool, the targets that are associative-recall hits

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.x[i : i + ORACLE_BATCH], self.y[i : i + ORACLE_BATCH]) for i in range(0, len(self.x), ORACLE_BATCH)]

    def hit_batches(self) -> list[torch.Tensor | None]:
        if self.ar_hit is None:
            return [None] * len(range(0, len(self.x), ORACLE_BATCH))
        return [self.ar_hit[i : i + ORACLE_BATCH] for i in range(0, len(self.x), ORACLE_BATCH)]


@dataclass
class LossSplit:
    """Summed held-out loss (nats) and token counts on associative-recall hits and on the other
    targets, for one evaluation round of the LM task."""

    hit_sum: float = 0.0
    hit_n: int = 0
    other_sum: float = 0.0
    other_n: int = 0

    def add(self, logits: torch.Tensor, y: torch.Tensor, hit: torch.Tensor) -> None:
        # float64 sums: a few hundred hits against thousands of other tokens, kept free of round-off
        nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="none").double()
        scored = y.flatten() != IGNORE
        hit = hit.flatten() & scored
        other = scored & ~hit
        self.hit_sum += float(nll[hit].sum())
        self.hit_n += int(hit.sum())
        self.other_sum += float(nll[other].sum())
        self.other_n += int(other.sum())

    @property
    def hit_loss(self) -> float | None:
        return self.hit_sum / self.hit_n if self.hit_n else None

    @property
    def other_loss(self) -> float | None:
        return self.other_sum / self.other_n if self.other_n else None


def load_heldout(spec: TaskSpec, seed: int, cache_dir: Path, key: int) -> HeldOut:
    if spec.kind == "lm":
        task = build_task(spec, seed, cache_dir)
        tokens, L = task.train_tokens, spec.seq_len

        def lm_donor(rng: np.random.Generator, rows: int) -> np.ndarray:
            starts = rng.integers(0, len(tokens) - L, size=rows)
            return np.asarray(tokens[starts[:, None] + np.arange(L)], dtype=np.int64)

        return HeldOut(spec, task.val_x, task.val_y, spec.vocab_size, lm_donor, lm.ar_hit_mask(task.val_x, task.val_y))
    generate, _ = _synthetic_generator(spec)
    x, y = generate(np.random.default_rng([seed, 1, key]), spec.test_examples, True)
    return HeldOut(spec, torch.from_numpy(x), torch.from_numpy(y), spec.vocab_size,
                   lambda rng, rows: generate(rng, rows, True)[0])


@dataclass
class _Check:
    batch: int  # index of the scored batch it copies
    t: int  # last position whose outputs must not change
    x: torch.Tensor
    length: int  # sequence length compared (the scored length, or a shorter prefix)


@dataclass
class TaskScore:
    curve: list[CurvePoint] = field(default_factory=list)
    round_times: list[tuple[int, float, float]] = field(default_factory=list)  # (step, ready, ended)
    first_since: float = 0.0  # when the parent last heard from the child before this task's first round


class ScoringDriver(threading.Thread):
    """Serves every evaluation round of one training run; `error` is set on the first fault."""

    def __init__(self, folder: Path, preset: Preset, seed: int, cache_dir: Path, *,
                 check_seed: int, checks: int = CHECKS_PER_ROUND, checks_final: int = CHECKS_FINAL,
                 lengths: tuple[float, ...] = ()):
        super().__init__(daemon=True, name="archscout-scoring")
        self.folder = Path(folder)
        self.dir = _Dir(self.folder)
        self.preset = preset
        key = heldout_key(cache_dir)
        self.data = {s.name: load_heldout(s, seed, cache_dir, key) for s in preset.tasks}
        self.specs = {s.name: s for s in preset.tasks}
        self.rng = np.random.default_rng([check_seed, seed])
        self.checks, self.checks_final, self.lengths = checks, checks_final, lengths
        self.scores = {name: TaskScore() for name in self.data}
        self.error: ScoringError | None = None
        self.halt = threading.Event()
        self.last_seen = time.monotonic()  # the end of the last round (or the start of the run)
        self.compared = 0  # perturbed copies compared
        self.max_rel_diff = 0.0  # the largest prefix difference seen (relative), for the record
        self.final_batches: dict[str, list[float]] = {}  # per-batch loss sum / correct count, last round
        self.loss_split: dict[str, LossSplit] = {}  # lm: hit / other loss of the last round
        self.rounds_s = 0.0  # wall seconds of every evaluation round (scored batches and copies)
        self.checks_s = 0.0  # of which the perturbed copies: building, exchanging, comparing

    # -- the thread -------------------------------------------------------------------------------

    def run(self) -> None:
        k = 0
        try:
            while not self.halt.is_set():
                ready = self._wait(oracle.ready_name(k), interval=READY_POLL_S)
                if ready is None:
                    return
                name, step = self._parse_ready(ready)
                t_ready = time.monotonic()
                if not self.scores[name].round_times:
                    self.scores[name].first_since = self.last_seen
                value = self._round(k, name, step)
                self.rounds_s += time.monotonic() - t_ready
                self.scores[name].curve.append(CurvePoint(step=step, value=value))
                self.scores[name].round_times.append((step, t_ready, time.monotonic()))
                self.dir.write(oracle.end_name(k), b"")
                self.last_seen = time.monotonic()
                k += 1
        except ScoringError as err:
            self.error = err
        except _Halted:
            return

    def raise_if_failed(self) -> None:
        """Called from the sandbox's poll loop: an exception there takes the child's tree down."""
        if self.error is not None:
            raise self.error

    def _wait(self, name: str, cap: int = 1 << 16, interval: float = POLL_S) -> bytes | None:
        while not self.halt.is_set():
            if self.dir.exists(name):
                return self.dir.read(name, cap)
            time.sleep(interval)
        return None

    def _parse_ready(self, raw: bytes) -> tuple[str, int]:
        try:
            msg = json.loads(raw)
            name, step = msg["task"], msg["step"]
        except (ValueError, KeyError, TypeError):
            raise ScoringError(FailureKind.invalid_result, "the oracle's round announcement is not valid JSON") from None
        if name not in self.specs or not isinstance(step, int):
            raise ScoringError(FailureKind.invalid_result, f"the oracle announced an unknown round ({name!r}, {step!r})")
        spec = self.specs[name]
        done = [p.step for p in self.scores[name].curve]
        expected = min(spec.eval_every * (len(done) + 1), spec.optim.steps)
        if step != expected:
            raise ScoringError(FailureKind.invalid_result,
                               f"task {name}: evaluation announced at step {step}, the schedule says {expected}")
        return name, step

    # -- one round ----------------------------------------------------------------------------------

    def _round(self, k: int, name: str, step: int) -> float:
        data, spec = self.data[name], self.specs[name]
        batches, hits = data.batches(), data.hit_batches()
        split = LossSplit()
        n_checks = self.checks_final if step == spec.optim.steps else self.checks
        t_build = time.monotonic()
        checks = [self._make_check(data, batches, length=spec.seq_len) for _ in range(n_checks)]
        # re-checks add copies at shorter lengths (fractions of the scored length)
        shorter = sorted({max(2, int(f * spec.seq_len)) for f in self.lengths} - {spec.seq_len})
        checks += [self._make_check(data, batches, length=n) for n in shorter if n < spec.seq_len]
        self.checks_s += time.monotonic() - t_build
        items = [("score", i) for i in range(len(batches))] + [("check", i) for i in range(len(checks))]
        self.rng.shuffle(items)
        prefix: dict[tuple[str, int], torch.Tensor] = {}  # outputs kept until their pair arrives
        total, count = 0.0, 0
        per_batch = [0.0] * len(batches)
        self._requests = 0  # the child numbers requests 0, 1, 2, ... within a round
        for what, i in items:
            t0 = time.monotonic()
            x, y = batches[i] if what == "score" else (checks[i].x, None)
            if what == "check" and checks[i].length != spec.seq_len:
                # a check at a shorter length compares its copy with the truncated original
                base_x = batches[checks[i].batch][0][:, : checks[i].length]
                base = self._exchange(k, base_x, data.vocab_size)
                self._compare(name, step, checks[i], base, self._exchange(k, x, data.vocab_size))
                self.checks_s += time.monotonic() - t0
                continue
            out = self._exchange(k, x, data.vocab_size)
            if what == "score":
                if spec.kind == "lm":
                    per_batch[i] = float(F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum"))
                    count += y.numel()
                    if hits[i] is not None:
                        split.add(out, y, hits[i])
                else:
                    mask = y != IGNORE
                    per_batch[i] = int((out.argmax(-1)[mask] == y[mask]).sum())
                    count += int(mask.sum())
                total += per_batch[i]
                partners = [c for c, ch in enumerate(checks) if ch.batch == i and ch.length == spec.seq_len]
            else:
                partners = [i]
            # pair each perturbed copy with its scored batch, whichever of the two came first
            for c in partners:
                mine = out[:, : checks[c].t + 1]
                other = ("score" if what == "check" else "check", c)
                if other not in prefix:
                    prefix[(what, c)] = mine.clone()
                    continue
                base, pert = (prefix.pop(other), mine) if what == "check" else (mine, prefix.pop(other))
                self._compare(name, step, checks[c], base, pert)
            if what == "check":
                self.checks_s += time.monotonic() - t0
        # kept for the re-check: a deterministic, stateless model scores each batch identically in
        # two fresh processes whatever order the batches and copies came in (quarantine.py)
        self.final_batches[name] = per_batch
        if spec.kind == "lm":
            self.loss_split[name] = split
        value = total / max(count, 1)
        if not math.isfinite(value):
            raise ScoringError(FailureKind.nan, f"non-finite evaluation result on {name} at step {step}")
        return value

    def _make_check(self, data: HeldOut, batches, length: int) -> _Check:
        b = int(self.rng.integers(0, len(batches)))
        x = batches[b][0][:, :length].clone()
        t = int(self.rng.integers(0, length - 1))  # positions t+1.. change, 0..t must not
        donor = torch.from_numpy(data.donor(self.rng, x.size(0)))[:, :length]
        x[:, t + 1 :] = donor[:, t + 1 :]
        return _Check(batch=b, t=t, x=x, length=length)

    def _compare(self, name: str, step: int, check: _Check, base: torch.Tensor, pert: torch.Tensor) -> None:
        base, pert = base[:, : check.t + 1], pert[:, : check.t + 1]
        diff = (base - pert).abs()
        scale = max(1.0, float(base.abs().max()))
        worst = float(diff.max())
        self.compared += 1
        self.max_rel_diff = max(self.max_rel_diff, worst / scale)
        if worst > REL_TOL * scale:
            row, pos = divmod(int(diff.amax(-1).argmax()), diff.size(1))
            raise ScoringError(
                FailureKind.leak,
                f"trained-weights causality: task {name} step {step}, length {check.length}: replacing the tokens "
                f"after position {check.t} changed the logits at position {pos} (row {row}) by {worst:.3g} "
                f"(tolerance {REL_TOL * scale:.3g})",
            )

    # -- the channel --------------------------------------------------------------------------------

    def _exchange(self, k: int, x: torch.Tensor, vocab: int) -> torch.Tensor:
        """Send one batch, wait for its logits, validate them."""
        j, self._requests = self._requests, self._requests + 1
        buf = io.BytesIO()
        np.save(buf, x.numpy().astype(np.int64), allow_pickle=False)
        self.dir.write(oracle.in_name(k, j), buf.getvalue())
        name = oracle.out_name(k, j)
        shape = (x.size(0), x.size(1), vocab)
        raw = self._wait(name, cap=4 * math.prod(shape) + 4096)
        if raw is None:
            raise _Halted
        try:
            out = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise ScoringError(FailureKind.invalid_result, "the oracle's logits are not a valid array") from None
        finally:
            self.dir.unlink(name)
        if out.dtype != np.float32 or out.shape != shape:
            raise ScoringError(FailureKind.invalid_result,
                               f"the oracle returned {out.dtype} {out.shape}, expected float32 {shape}")
        if not np.isfinite(out).all():
            raise ScoringError(FailureKind.nan, "non-finite logits on held-out data")
        return torch.from_numpy(out)

    # -- the trusted record -------------------------------------------------------------------------

    def apply(self, result: RunResult, cpu_s: float | None) -> RunResult:
        """Overwrite every scored number of the child's result with the parent's own. A failed run
        (e.g. a training timeout) keeps the tasks the parent scored to the end, and nothing else."""
        if not result.ok:
            kept = {name: task for name, task in result.tasks.items() if name in self.specs and self._complete(name)}
            for name, task in kept.items():
                self._score_task(name, task)
            result.tasks = kept
            result.ar_hit_loss = None  # a failed run is not scored; the kept tasks carry their own
            return result
        synthetic = []
        for name in self.specs:
            task = result.tasks.get(name)
            if task is None or not self._complete(name):
                raise ScoringError(FailureKind.invalid_result, f"task {name} finished without its final scored evaluation")
            final = self._score_task(name, task)
            if self.specs[name].kind != "lm":
                synthetic.append(final)
        lm_task = next((t for n, t in result.tasks.items() if n in self.specs and self.specs[n].kind == "lm"), None)
        result.val_loss = lm_task.val_loss if lm_task else None
        result.ar_hit_loss = lm_task.ar_hit_loss if lm_task else None
        result.benchmark = sum(synthetic) / len(synthetic) if synthetic else None
        result.tokens_per_s = lm_task.tokens_per_s if lm_task else None
        steps = sum(s.optim.steps for s in self.specs.values())
        result.trust = {
            "scored_by": "parent",
            "causality_checks": self.compared,
            "max_prefix_rel_diff": self.max_rel_diff,
            "steps_planned": steps,
            "tokens_planned": sum(s.optim.steps * s.optim.batch_size * s.seq_len for s in self.specs.values()),
            "cpu_s": cpu_s,
            "cpu_s_per_step": cpu_s / steps if cpu_s is not None and steps else None,
            "final_batches": self.final_batches,
            "eval_rounds_s": round(self.rounds_s, 3),
            "checks_s": round(self.checks_s, 3),
        }
        return result

    def _complete(self, name: str) -> bool:
        score = self.scores[name]
        return bool(score.curve) and score.curve[-1].step == self.specs[name].optim.steps

    def _score_task(self, name: str, task) -> float:
        """Write the parent's numbers into one task's record; returns its final scored value."""
        spec, score = self.specs[name], self.scores[name]
        values = [p.value for p in score.curve]
        task.eval_curve = list(score.curve)
        task.steps_planned = spec.optim.steps
        task.kind = "lm" if spec.kind == "lm" else "synthetic"
        task.val_loss = task.accuracy = task.accuracy_auc = None
        task.ar_hit_loss = task.other_loss = task.ar_hits = None
        if spec.kind == "lm":
            task.val_loss = values[-1]
            split = self.loss_split.get(name)
            if split is not None:
                task.ar_hit_loss, task.other_loss, task.ar_hits = split.hit_loss, split.other_loss, split.hit_n
        else:
            task.accuracy = values[-1]
            task.accuracy_auc = sum(values) / len(values)
        measured = self._tokens_per_s(spec, score)
        if measured is not None:
            task.tokens_per_s = measured
        return values[-1]

    def _tokens_per_s(self, spec: TaskSpec, score: TaskScore) -> float | None:
        # wall time between consecutive rounds as the parent saw them: training only, no start-up
        # and no evaluation, and nothing the child reports about itself
        times = score.round_times
        if not times:
            return None
        if len(times) < 2:
            # one round only: from the previous round (or the run's start, start-up included)
            return times[0][0] * spec.optim.batch_size * spec.seq_len / max(times[0][1] - score.first_since, 1e-9)
        seconds = sum(ready - prev_end for (_, _, prev_end), (_, ready, _) in zip(times, times[1:]))
        steps = times[-1][0] - times[0][0]
        return steps * spec.optim.batch_size * spec.seq_len / max(seconds, 1e-9)


class _Halted(Exception):
    """The run ended (exited, timed out) while the driver waited for the child."""


class _Dir:
    """The oracle folder as the parent touches it. The child may write there, so it could plant
    symlinks or FIFOs, or swap the folder for a link to a host directory: every operation goes
    through a descriptor of the folder opened before the child started, never follows a link and
    never blocks, and writes create fresh files (O_EXCL) under random names before the rename."""

    def __init__(self, folder: Path):
        self.fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        return True

    def read(self, name: str, cap: int) -> bytes:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self.fd)
        except OSError:
            raise ScoringError(FailureKind.invalid_result, f"the oracle's file {name} cannot be opened") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
                raise ScoringError(FailureKind.invalid_result, f"the oracle's file {name} is not a plain file of bounded size")
            return fh.read(cap + 1)[:cap]

    def write(self, name: str, data: bytes) -> None:
        tmp = f".p{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self.fd)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self.fd)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:  # once: the number may be reused afterwards
            os.close(fd)


def start_driver(scratch: Path, preset: Preset, seed: int, cache_dir: Path, **checks) -> ScoringDriver:
    """A running driver serving `scratch/oracle`; the perturbation schedule's seed is drawn here,
    fresh per run, so the child cannot predict which batches are copies."""
    folder = Path(scratch) / oracle.FOLDER
    folder.mkdir()
    driver = ScoringDriver(folder, preset, seed, cache_dir, check_seed=secrets.randbits(32), **checks)
    driver.start()
    return driver


def chain_poll(progress_poll, driver: ScoringDriver):
    def poll() -> None:
        progress_poll()
        driver.raise_if_failed()

    return poll


def hidden_paths(preset: Preset, cache_dir: Path) -> list[Path]:
    """What the child must not read: the synthetic test-set key and the LM held-out tokens."""
    paths = [heldout_dir(cache_dir)]
    paths += [lm.data_dir(s, cache_dir) / "val.npy" for s in preset.tasks if s.kind == "lm"]
    return paths


def stop(driver: ScoringDriver) -> None:
    driver.halt.set()
    driver.join(timeout=10)
    if not driver.is_alive():
        driver.dir.close()


def finish(driver: ScoringDriver, result: RunResult, cpu_s: float | None, base: dict) -> RunResult:
    """The run's result with the parent's numbers, or the driver's failure (a leak found on the
    trained weights wins over whatever the child said about itself)."""
    from archscout.records import failed_result

    stop(driver)
    if driver.error is not None:
        err = driver.error
        return failed_result(kind=err.kind, message=err.message, tasks=result.tasks, **base)
    try:
        result = driver.apply(result, cpu_s)
    except ScoringError as err:
        return failed_result(kind=err.kind, message=err.message, tasks=result.tasks, **base)
    result.trust.setdefault("cpu_s", cpu_s)
    return result
