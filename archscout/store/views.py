"""The one view of an architecture (records.ArchView), built from the study database.

The loop hands it to the proposer (parent, references), the analysts (candidate, parent,
grandparent, siblings) and the judges; `show` and the dashboard's architecture page start from it and
add what only they show (runs, diff, trace). Its metrics are those of the exploration run at the
study's seed (or the lowest ok seed when that one failed) at the study's preset, its fitness is the
explore score at that preset, and `analysis` is the latest analysis text.

`arch_views` builds the views of many architectures at once: one read transaction, four set-based
queries (contents, ok explore runs, scores, latest analysis) whatever the number of ids, and only
the columns a view shows (a run's full result JSON is never loaded). An architecture's contents are
immutable once committed and come from StudyDB's contents cache (db.py); what can change (its runs,
score and analyses, its parent) is read every time.

What is not here: which architectures a stage wants (loop.py) and the runs a page lists (web/).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from archscout.records import ArchView
from archscout.store import schema as s
from archscout.store.db import StudyDB, chunks
from archscout.store.schema import Stage


def arch_view(db: StudyDB, arch_id: int | None, preset: str, seed: int) -> ArchView | None:
    if arch_id is None:
        return None
    return arch_views(db, [arch_id], preset, seed).get(arch_id)


def arch_views(db: StudyDB, arch_ids: Iterable[int | None], preset: str, seed: int, *,
               conn=None) -> dict[int, ArchView]:
    """{id: view} of every stored architecture among `arch_ids` (None and unknown ids are left out)."""
    ids = sorted({i for i in arch_ids if i is not None})
    if not ids:
        return {}
    r, sc, an = s.runs, s.scores, s.analyses
    metrics: dict[int, list] = {}
    fitness: dict[int, float] = {}
    analysis: dict[int, str] = {}
    # one snapshot: a run, score or analysis committed meanwhile shows in all of a view or none
    with db.reading(conn) as c:
        contents = db.architecture_contents(ids, conn=c, committed=conn is None)
        for part in chunks(ids):
            rows = c.execute(
                select(r.c.architecture_id, r.c.seed, r.c.val_loss, r.c.benchmark, r.c.tokens_per_s, r.c.params)
                .where(r.c.architecture_id.in_(part), r.c.stage == Stage.EXPLORE, r.c.preset == preset,
                       r.c.status == "ok")
                .order_by(r.c.architecture_id, r.c.seed)
            )
            for row in rows:
                metrics.setdefault(row.architecture_id, []).append(row)
            for row in c.execute(select(sc.c.architecture_id, sc.c.fitness).where(
                    sc.c.architecture_id.in_(part), sc.c.stage == Stage.EXPLORE, sc.c.preset == preset)):
                fitness[row.architecture_id] = row.fitness
            latest = (select(func.max(an.c.id)).where(an.c.architecture_id.in_(part))
                      .group_by(an.c.architecture_id).scalar_subquery())
            for row in c.execute(select(an.c.architecture_id, an.c.text).where(an.c.id.in_(latest))):
                analysis[row.architecture_id] = row.text
    views = {}
    for arch_id in ids:
        arch = contents.get(arch_id)
        if arch is None:
            continue
        runs = metrics.get(arch_id, [])
        run = next((m for m in runs if m.seed == seed), runs[0] if runs else None)
        views[arch_id] = ArchView(
            id=arch_id, name=arch.name, code=arch.code, motivation=arch.motivation, genome=arch.genome,
            fitness=fitness.get(arch_id), val_loss=run.val_loss if run else None,
            benchmark=run.benchmark if run else None, tokens_per_s=run.tokens_per_s if run else None,
            params=run.params if run else None, analysis=analysis.get(arch_id, ""),
        )
    return views
