"""Mean / std / n of one run set's values over seeds, with the one rule for a single value.

fitness.py (the baseline reference), stats.py (noise floor, comparisons) and summary.py (the
study's noise floor as `status` and the dashboard show it) all call this. Its own module, with
numpy only, so that the commands that show a summary do not import scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class SeedStats(NamedTuple):
    mean: float
    std: float  # sample std (ddof=1); NaN for a single value
    n: int


def seed_stats(values: Sequence[float]) -> SeedStats:
    """Mean, sample standard deviation and count of a run set's values over seeds. The rule for one
    value: its std is NaN, because one seed measures no noise (it is unknown, not zero); callers
    that need a number test `n > 1` (or math.isnan), and JSON writers turn NaN into null."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("seed_stats: need a non-empty list of numbers")
    return SeedStats(float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan, int(arr.size))
