"""The pool on posterior ranks: a re-ranking takes the caller's posterior order (and keeps each
member's sd), and Thompson sampling sends parents to uncertain members the top-10 rule never picks."""

from __future__ import annotations

import random
from collections import Counter

from archscout.store import PoolPolicy, maybe_update, sample

PRESET = "nano"


def test_a_rerank_uses_the_posterior_order_and_keeps_sd(db, add_arch):
    ids = [add_arch(db) for _ in range(3)]
    for rank, a in enumerate(ids):
        db.add_score(a, "explore", PRESET, 0.9 - 0.1 * rank, {})  # single runs: ids[0] best
    ranked = [(ids[2], 0.7, 0.01), (ids[0], 0.6, 0.05), (ids[1], 0.5, 0.02)]
    version = maybe_update(db, PoolPolicy(cold_start=0, update_every=1), 1, preset=PRESET, ranked=lambda: ranked)
    assert version.ids == [ids[2], ids[0], ids[1]]
    assert [m.sd for m in db.latest_pool_version().members] == [0.01, 0.05, 0.02]
    single = maybe_update(db, PoolPolicy(cold_start=0, update_every=1, ranking="single"), 3, preset=PRESET,
                          ranked=lambda: ranked)
    assert single.ids == ids


def test_thompson_picks_uncertain_members_more_often(db, add_arch):
    ids = [add_arch(db) for _ in range(12)]
    members = [(a, 0.60, 0.005) for a in ids[:10]]
    uncertain, certain = ids[10], ids[11]
    # both a little below the top ten; one of them barely measured
    members += [(uncertain, 0.59, 0.10), (certain, 0.59, 0.001)]
    db.save_pool_version(members, experiments_seen=0)
    draws = 2000
    top = Counter(sample(db, PoolPolicy(), random.Random(0), preset=PRESET)[0] for _ in range(draws))
    ts = Counter(sample(db, PoolPolicy(selection="thompson"), random.Random(0), preset=PRESET)[0] for _ in range(draws))
    assert top[uncertain] == 0 and top[certain] == 0  # ranks 11-12 are outside the top-10 window
    # with sd 0.1 a draw beats ten members at 0.60 +- 0.005 about 40 % of the time
    assert ts[uncertain] > 0.25 * draws
    assert ts[certain] < 0.01 * draws
    assert ts[uncertain] > 10 * max(1, ts[certain])
