"""The LLM Analyst and the experience summarizer.

`llm_analyze` explains one trained candidate in the paper's five sections (design evaluation,
results analysis, expectation vs reality, theoretical explanation, synthesis) plus `shortcomings`,
a short statement of the open weaknesses worded as a literature query. `analyze_with_cognition`
runs it and then searches the Cognition base with those shortcomings, returning the hits so the
caller can store the retrieved entry ids next to the analysis. `render_analysis` turns the result
into the markdown text that is stored and shown. `summarize` condenses an analysis and its hits into
the short experience digest the planner reads (the caller caches one per architecture).

The statistical comparisons (deltas and z-scores against baseline, parent, grandparent and
siblings) come from the offline analyst (analyst.py): the model explains the numbers, it does not
compute them. Inputs are plain summaries; there is no database access. LLM errors propagate, and
the caller keeps the statistical analysis when the LLM one fails.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from archscout.analyze.analyst import analyze
from archscout.records import ArchView
from archscout.analyze.fitness import BaselineRef
from archscout.agents.planner import Client, Retriever, retrieve
from archscout.agents.prompts import cognition_view, excerpt, render_pair

MAX_DIFF_CHARS = 6_000
SECTIONS = (
    ("design_evaluation", "Design evaluation"),
    ("results_analysis", "Results analysis"),
    ("expectation_vs_reality", "Expectation vs reality"),
    ("theoretical_explanation", "Theoretical explanation"),
    ("synthesis", "Synthesis"),
    ("shortcomings", "Open shortcomings"),
)


class AnalystOut(BaseModel):
    design_evaluation: str = Field(min_length=1)
    results_analysis: str = Field(min_length=1)
    expectation_vs_reality: str = Field(min_length=1)
    theoretical_explanation: str = Field(min_length=1)
    synthesis: str = Field(min_length=1)
    shortcomings: str = Field(min_length=1)  # the query into the Cognition base


class SummaryOut(BaseModel):
    digest: str = Field(min_length=1)


def code_diff(old: str, new: str, max_chars: int = MAX_DIFF_CHARS) -> str:
    """Unified diff old -> new, bounded; empty when either side has no code or nothing changed."""
    if not old or not new:
        return ""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), "parent", "candidate", lineterm="", n=2)
    return excerpt("\n".join(lines), max_chars)


def _top_siblings(siblings: Sequence[ArchView]) -> list[ArchView]:
    # the same two strongest siblings the statistical analyst compares against
    return sorted(siblings, key=lambda s: -(s.fitness or 0.0))[:2]


def llm_analyze(
    client: Client,
    *,
    candidate: ArchView,
    baseline_ref: BaselineRef,
    parent: ArchView | None = None,
    grandparent: ArchView | None = None,
    siblings: Sequence[ArchView] = (),
    numbers: dict[str, Any] | None = None,
    cognition: Sequence[Any] = (),
    motivation: str = "",
    experiment_id: int | None = None,
) -> AnalystOut:
    """One analysis of `candidate`.

    `numbers` is the statistical analyst's output (AnalysisResult.numbers); when None it is
    computed here from the same inputs. `cognition` holds hits or entries related to the design
    (e.g. those that grounded its proposal), shown as context. `motivation` is the proposal's own,
    needed for the expectation-vs-reality section."""
    siblings = _top_siblings(siblings)
    if numbers is None:
        numbers = analyze(candidate, baseline_ref, parent, grandparent, siblings).numbers
    lineage = [(label, a) for label, a in (("parent", parent), ("grandparent", grandparent)) if a is not None]
    lineage += [("sibling", s) for s in siblings]
    system, user = render_pair(
        "analyst", candidate=candidate, motivation=motivation, baseline=baseline_ref.model_dump(),
        lineage=lineage, parent_diff=code_diff(parent.code, candidate.code) if parent else "",
        numbers=numbers, cognition=cognition_view(cognition),
    )
    return client.call(
        "analyst", system=system, user=user, schema=AnalystOut,
        experiment_id=experiment_id, architecture_id=candidate.id,
    )


def analyze_with_cognition(
    client: Client, base: Retriever | None, *, k: int = 3, **analysis: Any
) -> tuple[AnalystOut, list[Any]]:
    """`llm_analyze(client, **analysis)`, then the top `k` Cognition-base hits for its `shortcomings`
    (none when `base` is None). Store `[h.entry.id for h in hits]` with the analysis."""
    out = llm_analyze(client, **analysis)
    return out, retrieve(base, out.shortcomings, k)


def render_analysis(out: AnalystOut, hits: Sequence[Any] = ()) -> str:
    """The analysis as markdown, one `##` section each, then the retrieved entries (if any)."""
    parts = [f"## {title}\n\n{getattr(out, field).strip()}" for field, title in SECTIONS]
    entries = cognition_view(hits)
    if entries:
        listed = "\n".join(f"- [{e['id']}] {e['title']}" + (f" ({e['source']})" if e["source"] else "") for e in entries)
        parts.append(f"## Retrieved knowledge\n\n{listed}")
    return "\n\n".join(parts) + "\n"


def summarize(
    client: Client,
    analysis_text: str,
    cognition_hits: Sequence[Any],
    *,
    experiment_id: int | None = None,
    architecture_id: int | None = None,
) -> str:
    """The experience digest of one analysed architecture, for the planner of its children."""
    system, user = render_pair("summarizer", analysis_text=analysis_text, cognition=cognition_view(cognition_hits))
    out = client.call(
        "summarizer", system=system, user=user, schema=SummaryOut,
        experiment_id=experiment_id, architecture_id=architecture_id,
    )
    return out.digest.strip()
