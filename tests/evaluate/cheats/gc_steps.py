"""Cheat: finds the worker's parsed job through gc at import and trains ten times the step budget."""

import gc

from archscout.space.baselines.linear_attention import LinearAttention

for obj in gc.get_objects():
    if type(obj).__name__ == "Job" and hasattr(obj, "preset"):
        for task in obj.preset.tasks:
            task.optim.steps *= 10


class MoreSteps(LinearAttention):
    pass
