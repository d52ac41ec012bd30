"""The one view of an architecture (records.ArchView), built from the study database.

The loop hands it to the proposer (parent, references), the analysts and the judges; `show` and the
dashboard's architecture page start from it and add what only they show (runs, diff, trace). Its
metrics are those of the exploration run at the study's seed (or the lowest ok seed when that one
failed) at the study's preset, and `analysis` is the latest analysis text.
"""

from __future__ import annotations

from archscout.records import ArchView
from archscout.store.db import StudyDB
from archscout.store.schema import Stage


def arch_view(db: StudyDB, arch_id: int | None, preset: str, seed: int) -> ArchView | None:
    if arch_id is None:
        return None
    arch = db.architecture(arch_id)
    if arch is None:
        return None
    runs = [r for r in db.runs_for(arch_id, Stage.EXPLORE, preset) if r.status == "ok"]
    run = next((r for r in runs if r.seed == seed), runs[0] if runs else None)
    score = db.score(arch_id, Stage.EXPLORE, preset)
    analyses = db.analyses_for(arch_id)
    return ArchView(
        id=arch.id, name=arch.name, code=arch.code, motivation=arch.motivation, genome=arch.genome,
        fitness=score.fitness if score else None, val_loss=run.val_loss if run else None,
        benchmark=run.benchmark if run else None, tokens_per_s=run.tokens_per_s if run else None,
        params=run.params if run else None, analysis=analyses[-1].text if analyses else "",
    )
