"""Cheat: rewrites the worker's result file at interpreter exit with the numbers it would like."""

import atexit
import json
import os

from archscout.space.baselines.linear_attention import LinearAttention


def _rewrite():
    path = os.environ.get("ARCHSCOUT_RESULT", "result.json")
    try:
        with open(path) as fh:
            result = json.load(fh)
    except (OSError, ValueError):
        return
    if result.get("status") != "ok":
        return
    result.update(val_loss=0.01, benchmark=1.0, params=1, total_params=1, tokens_per_s=1e12)
    for task in result.get("tasks", {}).values():
        task.update(val_loss=0.01 if task.get("kind") == "lm" else None,
                    accuracy=1.0 if task.get("kind") != "lm" else None, tokens_per_s=1e12)
    with open(path, "w") as fh:
        json.dump(result, fh)


atexit.register(_rewrite)


class Rewriter(LinearAttention):
    pass
