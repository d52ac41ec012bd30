"""What a candidate is: the contract, the backbone, tensor ops and the built-in baseline files."""

from __future__ import annotations

from pathlib import Path

BASELINE_DIR = Path(__file__).with_name("baselines")
# name on the command line -> candidate file shipped in the package
BASELINES = {
    "deltanet": "deltanet.py",
    "gated_deltanet": "gated_deltanet.py",
    "linear_attention": "linear_attention.py",
    "retention": "retention.py",
    "softmax_attention": "softmax_attention.py",
}


def baseline_path(name: str) -> Path:
    key = name.lower().replace("-", "_")
    if key not in BASELINES:
        raise ValueError(f"unknown baseline '{name}' (known: {', '.join(BASELINES)})")
    return BASELINE_DIR / BASELINES[key]
