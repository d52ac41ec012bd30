"""The one view of an architecture (records.ArchView), built from the study database.

The loop hands it to the proposer (parent, references), the analysts (candidate, parent,
grandparent, siblings) and the judges; `show` and the dashboard's architecture page start from it and
add what only they show (runs, diff, trace). Its metrics are those of the exploration run at the
study's seed (or the lowest ok seed when that one failed) at the study's preset, its fitness is the
explore score at that preset, and `analysis` is the latest analysis text.

`arch_views` builds the views of many architectures at once: one read transaction, four set-based
queries (contents, ok explore runs, scores, latest analysis) whatever the number of ids, and only
the columns a view shows (a run's full result JSON is never loaded). An architecture's contents are
immutable once committed and are cached per study database (`architecture_contents`, least recently
used first out); what can change (its runs, score and analyses, its parent) is read every time.

What is not here: which architectures a stage wants (loop.py) and the runs a page lists (web/).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from archscout.records import ArchView
from archscout.store import schema as s
from archscout.store.db import StudyDB, chunks
from archscout.store.schema import Stage


# architectures whose contents are kept in memory per study database: the pool's members, their
# children and the recent proposals fit; a study of 100k does not have to
CONTENTS_CACHE = 4096


@dataclass(frozen=True)
class ArchContents:
    """What never changes about a stored architecture (its code, name, motivation, genome), unlike
    its parent (an import may link it later), runs, scores and analyses."""

    id: int
    name: str
    code: str
    motivation: str
    _genome: dict[str, Any] | None

    @property
    def genome(self) -> dict[str, Any] | None:
        # a copy: the cached one is shared by every caller
        return copy.deepcopy(self._genome)


class _Cache:
    def __init__(self):
        self.rows: OrderedDict[int, ArchContents] = OrderedDict()
        self.lock = threading.Lock()  # the parallel driver's threads share one StudyDB


_CACHES: weakref.WeakKeyDictionary[StudyDB, _Cache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def architecture_contents(db: StudyDB, arch_ids: Iterable[int], *, conn: Connection | None = None,
                          committed: bool | None = None) -> dict[int, ArchContents]:
    """{id: contents} of the stored architectures among `arch_ids`, from memory where cached.

    Only committed rows are cached (a committed architecture is never changed or deleted; its
    parent, which an import may set later, is not part of the contents): rows read in a
    transaction of our own, or through a `conn` the caller vouches for with `committed=True` (a
    read-only transaction it opened). A row seen inside a write transaction may be rolled back and
    its id reused (SQLite), so by default rows read through `conn` are not cached.
    """
    with _CACHES_LOCK:
        cache = _CACHES.get(db) or _CACHES.setdefault(db, _Cache())
    ids = list(dict.fromkeys(arch_ids))
    with cache.lock:
        out = {i: cache.rows[i] for i in ids if i in cache.rows}
        for i in out:
            cache.rows.move_to_end(i)
    missing = [i for i in ids if i not in out]
    if not missing:
        return out
    t = s.architectures
    fresh = {}
    with db.reading(conn) as c:
        for part in chunks(missing):
            for r in c.execute(select(t.c.id, t.c.name, t.c.code, t.c.motivation, t.c.genome).where(t.c.id.in_(part))):
                fresh[r.id] = ArchContents(r.id, r.name, r.code, r.motivation, r.genome)
    if committed if committed is not None else conn is None:
        with cache.lock:
            cache.rows.update(fresh)
            while len(cache.rows) > CONTENTS_CACHE:
                cache.rows.popitem(last=False)
    return out | fresh


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
        contents = architecture_contents(db, ids, conn=c, committed=conn is None)
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
