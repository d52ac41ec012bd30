"""The file protocol between the scoring parent and the trained candidate (the "oracle"), child side.

After (and during) training the child never computes a scored number. At every evaluation point it
announces itself and then answers forward requests: the parent writes a batch of token ids, the
child writes back the model's float32 logits for it, until the parent says the round is over. What
the parent does with the logits (losses, accuracies, the causality comparisons of perturbed copies)
is in `scoring.py`, in the parent process, where candidate code never runs.

Files, all in one folder inside the run's scratch directory (the only place the child may write):

    ready.K.json    child -> parent: round K is ready ({"task": name, "step": step})
    in.K.J.npy      parent -> child: request J of round K, int64 [B, L]
    out.K.J.npy     child -> parent: float32 logits [B, L, V] for request J
    end.K           parent -> child: round K is over, go on training

Every file appears by an atomic rename, so neither side reads a half-written one. The parent
validates what it reads (size cap, shape, dtype, finiteness) and treats anything else as an invalid
result. The child learns nothing here it could not see anyway: inputs only, never targets.

What this module does not do: decide anything, or defend against a child that remembers earlier
inputs (see the README's threat model).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

FOLDER = "oracle"
# the child polls for the parent's next file this often at first, backing off to MAX_WAIT_S
MIN_WAIT_S = 0.0005
MAX_WAIT_S = 0.01


def ready_name(k: int) -> str:
    return f"ready.{k}.json"


def in_name(k: int, j: int) -> str:
    return f"in.{k}.{j}.npy"


def out_name(k: int, j: int) -> str:
    return f"out.{k}.{j}.npy"


def end_name(k: int) -> str:
    return f"end.{k}"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def save_array(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    os.replace(tmp, path)


class ChildOracle:
    """Child side: called by the training loop at each evaluation point with the model; serves the
    parent's forward requests for that round and returns when the parent ends it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.round = 0

    def __call__(self, model, task: str, step: int) -> None:
        import torch

        from archscout.evaluate.tasks import forward_logits, model_device, run_eval

        k, self.round = self.round, self.round + 1
        write_atomic(self.folder / ready_name(k), json.dumps({"task": task, "step": step}).encode())
        device = model_device(model)
        j = 0
        while True:
            request = self.folder / in_name(k, j)
            if not self._wait(request, self.folder / end_name(k)):
                return
            x = torch.from_numpy(np.load(request, allow_pickle=False))
            request.unlink()
            logits = run_eval(model, lambda: forward_logits(model, x.to(device)))  # noqa: B023 - called in this iteration
            save_array(self.folder / out_name(k, j), logits.detach().to("cpu", torch.float32).numpy())
            j += 1

    @staticmethod
    def _wait(request: Path, end: Path) -> bool:
        """True when the request exists, False when the round ended."""
        wait = MIN_WAIT_S
        while True:
            if request.exists():
                return True
            if end.exists():
                return False
            time.sleep(wait)
            wait = min(wait * 2, MAX_WAIT_S)
