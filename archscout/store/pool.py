"""The candidate pool: which architectures an experiment builds on, and when that set is re-ranked.

This is the selection policy; the pool's storage (versions of an ordered member list) is in db.py.
As in ASI-Arch, the parent of a new proposal is drawn from the top ranks of the pool and a few
references from the ranks below it. The pool is a stored snapshot, so sampling reads one row
(O(pool size)) however large the study grows; only a re-ranking queries the scores, with an
ORDER BY ... LIMIT that walks the `ix_scores_rank` index.

Schedule. `init_pool` stores version 1 from the seed (baseline) architectures. During the cold
start (`experiments_done < cold_start`) the pool stays as seeded, so early proposals all build on
the baselines. From then on `maybe_update` re-ranks once every `update_every` finished experiments
(batched: ranking after every result would make the pool chase single noisy runs).

Small pools. A rank range beyond the pool's size is clamped to what exists: an empty window falls
back to the whole pool, so a pool of three seeds still gives a parent and two references (never the
parent itself). An empty pool gives no parent (None) and no references.

Ranking. By default (`ranking = "posterior"`) the caller hands `maybe_update` the candidates ranked by
their posterior mean (analyze/posterior.py: all of a candidate's runs, shrunk toward the population
by the measured seed noise), so ASI-Arch's top-10 / 11-50 rule reads posterior ranks; the store
cannot compute that itself (it sits below analyze). `ranking = "single"` is the old rule: one run's
stored fitness. `selection = "thompson"` draws the parent by Thompson sampling over the whole pool
(one draw from each member's posterior, the highest wins), which sends parents, and so seeds, to
candidates whose rank is still uncertain.

What is not here: how fitness is computed (analyze/fitness.py) and the experiment loop (loop.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import select
from sqlalchemy.engine import Connection

from archscout.store.db import StudyDB
from archscout.store.errors import StoreError
from archscout.store.rows import PoolVersion
from archscout.store.schema import Stage
from archscout.store.schema import quarantine as _quarantine

EXPLORE = Stage.EXPLORE
# primary-key lookups before the random policy falls back to COUNT + OFFSET
_RANDOM_TRIES = 32
# Quarantine states (quarantine.py decides them; they live here because sampling reads them and the
# store must not import the quarantine's logic: that ran in an import cycle).
QUARANTINED, CLEARED, CONFIRMED = "quarantined", "cleared", "confirmed"
HELD = (QUARANTINED, CONFIRMED)  # states that keep an architecture out of the pool and verification


def held_ids(db: StudyDB, *, conn=None) -> set[int]:
    """Architectures that must not be parents, references or verification targets."""
    rows = db.fetch_all(select(_quarantine.c.architecture_id).where(_quarantine.c.state.in_(HELD)), conn)
    return {r.architecture_id for r in rows}


class PoolPolicy(BaseModel):
    """How parents and references are drawn and how often the pool is re-ranked (paper defaults)."""

    model_config = ConfigDict(extra="forbid")

    pool_size: int = 50
    parent_ranks: tuple[int, int] = (1, 10)  # 1-based, inclusive
    reference_ranks: tuple[int, int] = (11, 50)
    n_references: int = 4
    cold_start: int = 200  # experiments before the seeded pool is first re-ranked
    update_every: int = 50  # finished experiments between re-rankings after the cold start
    # "random": the parent is drawn uniformly from every scored architecture (an ablation of the
    # pool's elitism); references still come from the pool
    # "thompson": the parent is the pool member with the highest draw from its posterior
    selection: Literal["top", "random", "thompson"] = "top"
    # what a re-ranking orders by: the posterior mean over all runs, or one run's stored fitness
    ranking: Literal["posterior", "single"] = "posterior"

    @model_validator(mode="after")
    def _ranges_make_sense(self) -> PoolPolicy:
        for name in ("parent_ranks", "reference_ranks"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be 1 <= first <= last; got ({lo}, {hi})")
        if self.pool_size < 1 or self.update_every < 1 or self.n_references < 0:
            raise ValueError("pool_size and update_every must be >= 1, n_references >= 0")
        return self


def _window(ids: list[int], ranks: tuple[int, int]) -> list[int]:
    lo, hi = ranks
    return ids[lo - 1 : hi] or ids


def sample(
    db: StudyDB, policy: PoolPolicy, rng: random.Random, *, preset: str
) -> tuple[int | None, list[int]]:
    """(parent_id, reference_ids) for the next experiment; references are listed best first.

    `preset` names the study's explore preset, whose scores the random policy draws from.
    """
    # one read transaction: the pool, the count and the offset lookup see the same snapshot
    with db.reading() as conn:
        latest = db.latest_pool_version(conn=conn)
        # a quarantined architecture is never a parent or a reference, even when an old pool
        # version (or a score from before its quarantine) still lists it
        held = held_ids(db, conn=conn)
        ids = [i for i in (latest.ids if latest else []) if i not in held]
        parent = None
        if policy.selection == "random":
            parent = _random_scored(db, preset, rng, conn)
            parent = None if parent in held else parent
        if policy.selection == "thompson" and latest is not None:
            parent = _thompson([m for m in latest.members if m.architecture_id not in held], rng)
    if parent is None:
        window = _window(ids, policy.parent_ranks)
        parent = rng.choice(window) if window else None
    candidates = [i for i in _window(ids, policy.reference_ranks) if i != parent]
    if not candidates:
        candidates = [i for i in ids if i != parent]
    chosen = set(rng.sample(candidates, min(policy.n_references, len(candidates))))
    return parent, [i for i in ids if i in chosen]


def _thompson(members, rng: random.Random) -> int | None:
    # a member ranked without a posterior (the seeded pool, `ranking = "single"`) draws its fitness
    # exactly; one with no fitness at all cannot be compared and is left out
    draws = [(rng.gauss(m.fitness, m.sd or 0.0), m.architecture_id) for m in members if m.fitness is not None]
    return max(draws)[1] if draws else None


def _random_scored(db: StudyDB, preset: str, rng: random.Random, conn: Connection) -> int | None:
    # Rejection sampling on the scores' primary key: draw an id uniformly between the smallest and
    # the largest, keep it if that row is an explore score at the preset. Every such row is equally
    # likely (a replaced score keeps its id), and each try is one primary-key lookup, so the cost
    # does not grow with the study; COUNT + OFFSET is exact too but walks O(n) index entries.
    lo, hi = db.score_id_range(conn=conn)
    if lo is None:
        return None
    for _ in range(_RANDOM_TRIES):
        hit = db.scored_architecture(rng.randint(lo, hi), EXPLORE, preset, conn=conn)
        if hit is not None:
            return hit
    # most score rows belong to other stages or presets: take the exact O(n) path once
    n = db.count_scored(EXPLORE, preset, conn=conn)
    if n == 0:
        return None
    return db.scored_at_rank(EXPLORE, preset, rng.randrange(n), conn=conn)


def init_pool(db: StudyDB, arch_ids: list[int], *, preset: str | None = None) -> PoolVersion:
    """Store pool version 1 from the seed architectures, ordered by fitness where already scored.

    Raises `StoreError` when the study already has a pool.
    """
    if db.latest_pool_version() is not None:
        raise StoreError("the candidate pool is already initialised")
    fitness = db.fitness_of(arch_ids, EXPLORE, preset) if preset else {}
    # unscored seeds keep their given order, after the scored ones (sort is stable)
    ordered = sorted(arch_ids, key=lambda a: -fitness[a] if a in fitness else float("inf"))
    return db.save_pool_version([(a, fitness.get(a)) for a in ordered], experiments_seen=0)


Ranked = Sequence[tuple[int, float, float]]  # (architecture_id, posterior mean, posterior sd), best first


def maybe_update(
    db: StudyDB, policy: PoolPolicy, experiments_done: int, *, preset: str,
    ranked: Callable[[], Ranked] | None = None,
) -> PoolVersion | None:
    """Re-rank the pool when the schedule says so; return the new version, or None if not due.

    `experiments_done` is the number of finished experiments so far; the pool becomes the
    `pool_size` best by posterior (`ranked()`, called only when a re-ranking is due) or, with
    `ranking = "single"` or no `ranked`, the best explore scores at `preset`.
    """
    if experiments_done < policy.cold_start:
        return None
    latest = db.latest_pool_version()
    still_seeded = latest is None or latest.experiments_seen < policy.cold_start
    if not still_seeded and experiments_done - latest.experiments_seen < policy.update_every:
        return None
    if policy.ranking == "posterior" and ranked is not None:
        held = held_ids(db)
        top = [row for row in ranked() if row[0] not in held][: policy.pool_size]
    else:
        top = db.top_scores(EXPLORE, preset, policy.pool_size)
    if not top:
        return None
    return db.save_pool_version(top, experiments_seen=experiments_done)
