"""The offline, statistical Analyst: what changed in a design and what moved in each metric.

It compares a candidate with its parent, grandparent and the two strongest siblings, expresses
every metric difference in units of the baseline's seed noise (so "0.3σ" reads as noise and "4σ"
as a real effect, for a single run), and writes a short text plus the numbers. The LLM Analyst may
later replace the text; the numbers stay. It reads nothing from the database itself: the loop
passes plain summaries in.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from pydantic import BaseModel

from archscout.analyze.fitness import BaselineRef
from archscout.records import ArchView

# |z| below this is within one run's seed noise; above NOISE_Z * 2 it is clearly outside it
NOISE_Z = 1.0


class AnalysisResult(BaseModel):
    text: str
    numbers: dict[str, Any]


def design_change(candidate: ArchView, other: ArchView) -> str:
    """Genome differences when both have one, else a size of the code diff."""
    if candidate.genome and other.genome:
        changed = [
            f"{key}: {other.genome.get(key)!r} → {value!r}"
            for key, value in candidate.genome.items()
            if other.genome.get(key) != value
        ]
        return "; ".join(changed) if changed else "same design genes"
    diff = difflib.unified_diff(other.code.splitlines(), candidate.code.splitlines(), lineterm="", n=0)
    lines = [ln for ln in diff if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    return f"{len(lines)} source lines differ"


def _z(delta: float | None, std: float | None) -> float | None:
    if delta is None or not std or math.isnan(std):  # one baseline seed: no noise estimate
        return None
    return delta / std


def _verdict(z: float | None) -> str:
    if z is None:
        return "no noise estimate"
    size = abs(z)
    if size < NOISE_Z:
        return "within seed noise"
    if size < 2 * NOISE_Z:
        return "at the edge of seed noise"
    return "outside seed noise"


def compare(candidate: ArchView, other: ArchView, ref: BaselineRef) -> dict[str, Any]:
    """Metric deltas candidate − other; loss deltas are negative when the candidate is better."""
    out: dict[str, Any] = {"id": other.id, "name": other.name, "change": design_change(candidate, other)}
    for metric, std in (("val_loss", ref.val_loss_std), ("benchmark", ref.benchmark_std)):
        a, b = getattr(candidate, metric), getattr(other, metric)
        delta = None if a is None or b is None else a - b
        out[f"d_{metric}"] = delta
        out[f"z_{metric}"] = _z(delta, std)
    return out


def _sentence(label: str, cmp: dict[str, Any]) -> str:
    parts = [f"Against its {label} {cmp['name']} (#{cmp['id']}; {cmp['change']}):"]
    for metric, better_when in (("val_loss", "lower"), ("benchmark", "higher")):
        delta, z = cmp[f"d_{metric}"], cmp[f"z_{metric}"]
        if delta is None:
            continue
        zs = "" if z is None else f", {z:+.1f}σ"
        parts.append(f"{metric} {delta:+.4f}{zs} ({_verdict(z)}; {better_when} is better)")
    return " ".join(parts)


def analyze(
    candidate: ArchView,
    ref: BaselineRef,
    parent: ArchView | None = None,
    grandparent: ArchView | None = None,
    siblings: list[ArchView] | None = None,
) -> AnalysisResult:
    siblings = sorted(siblings or [], key=lambda s: -(s.fitness or 0.0))[:2]
    numbers: dict[str, Any] = {
        "baseline": {"val_loss_mean": ref.val_loss_mean, "val_loss_std": ref.val_loss_std,
                     "benchmark_mean": ref.benchmark_mean, "benchmark_std": ref.benchmark_std, "n": ref.n},
        "vs_baseline": compare(candidate, ArchView(id=0, name="baseline mean", val_loss=ref.val_loss_mean,
                                                     benchmark=ref.benchmark_mean), ref),
    }
    numbers["vs_baseline"].pop("change")
    lines = [f"{candidate.name}: val loss {candidate.val_loss}, benchmark {candidate.benchmark}, fitness {candidate.fitness}."]
    vb = numbers["vs_baseline"]
    lines.append(
        f"Against the baseline mean over {ref.n} seeds: val_loss {_fmt(vb['d_val_loss'])} ({_verdict(vb['z_val_loss'])}), "
        f"benchmark {_fmt(vb['d_benchmark'])} ({_verdict(vb['z_benchmark'])})."
    )
    for label, other in (("parent", parent), ("grandparent", grandparent)):
        if other is not None:
            numbers[label] = compare(candidate, other, ref)
            lines.append(_sentence(label, numbers[label]))
    numbers["siblings"] = []
    for sib in siblings:
        cmp = compare(candidate, sib, ref)
        numbers["siblings"].append(cmp)
        lines.append(_sentence("sibling", cmp))
    lines.append(
        "A single run's difference under 1σ of the baseline's seed noise is not evidence; only the "
        "verification stage (several fresh seeds, FDR-controlled test) can confirm an improvement."
    )
    return AnalysisResult(text="\n".join(lines), numbers=numbers)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"
