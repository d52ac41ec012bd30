"""The candidate pool: seeding, rank-window sampling, the cold start, batched re-ranking, random."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from archscout.store import PoolPolicy, StoreError, init_pool, maybe_update, sample

PRESET = "tiny"


def scored_pool(db, add_arch, n: int, preset: str = PRESET) -> list[int]:
    """n architectures scored so that the first id is the best; returns ids best first."""
    ids = [add_arch(db) for _ in range(n)]
    with db.transaction() as tx:
        for rank, a in enumerate(ids):
            db.add_score(a, "explore", preset, 100.0 - rank, {}, conn=tx)
    return ids


def test_policy_rejects_impossible_ranges():
    with pytest.raises(ValidationError):
        PoolPolicy(parent_ranks=(0, 10))
    with pytest.raises(ValidationError):
        PoolPolicy(reference_ranks=(50, 11))
    with pytest.raises(ValidationError):
        PoolPolicy(pool_sise=10)


def test_init_pool_orders_scored_seeds_first_and_only_once(db, add_arch):
    unscored = add_arch(db, origin="baseline")
    low, high = add_arch(db, origin="baseline"), add_arch(db, origin="baseline")
    db.add_score(low, "explore", PRESET, 1.0, {})
    db.add_score(high, "explore", PRESET, 2.0, {})
    pool = init_pool(db, [unscored, low, high], preset=PRESET)
    assert pool.version == 1 and pool.ids == [high, low, unscored]
    assert [m.fitness for m in pool.members] == [2.0, 1.0, None]
    with pytest.raises(StoreError):
        init_pool(db, [low])


def test_draws_respect_the_rank_windows(db, add_arch):
    ids = scored_pool(db, add_arch, 60)
    policy = PoolPolicy()
    pool = maybe_update(db, policy.model_copy(update={"cold_start": 0}), 50, preset=PRESET)
    assert pool.ids == ids[:50]
    rank = {a: i + 1 for i, a in enumerate(pool.ids)}
    rng = random.Random(0)
    parents, refs_seen = Counter(), set()
    for _ in range(1000):
        parent, refs = sample(db, policy, rng, preset=PRESET)
        assert 1 <= rank[parent] <= 10
        assert len(refs) == 4 and len(set(refs)) == 4 and parent not in refs
        assert all(11 <= rank[r] <= 50 for r in refs)
        assert [rank[r] for r in refs] == sorted(rank[r] for r in refs)  # best first
        parents[parent] += 1
        refs_seen.update(refs)
    assert set(parents) == set(ids[:10])
    assert refs_seen == set(ids[10:50])


def test_same_seed_gives_the_same_draws(db, add_arch):
    init_pool(db, scored_pool(db, add_arch, 30), preset=PRESET)
    def five_draws(seed):
        rng = random.Random(seed)
        return [sample(db, PoolPolicy(), rng, preset=PRESET) for _ in range(5)]

    assert five_draws(7) == five_draws(7)
    assert five_draws(7) != five_draws(8)


def test_small_pools_clamp_the_windows(db, add_arch):
    policy = PoolPolicy()
    assert sample(db, policy, random.Random(0), preset=PRESET) == (None, [])
    seeds = scored_pool(db, add_arch, 3)
    init_pool(db, seeds, preset=PRESET)
    for seed in range(20):
        parent, refs = sample(db, policy, random.Random(seed), preset=PRESET)
        assert parent in seeds and sorted(refs) == sorted(set(seeds) - {parent})
    twelve = scored_pool(db, add_arch, 9)
    db.save_pool_version([(a, None) for a in seeds + twelve], experiments_seen=0)
    for seed in range(20):
        parent, refs = sample(db, policy, random.Random(seed), preset=PRESET)
        assert parent in (seeds + twelve)[:10] and refs == twelve[-2:]


def test_cold_start_keeps_the_seeded_pool(db, add_arch):
    seeds = [add_arch(db, origin="baseline")]
    init_pool(db, seeds)
    scored_pool(db, add_arch, 20)
    policy = PoolPolicy(cold_start=10, update_every=5)
    for done in range(10):
        assert maybe_update(db, policy, done, preset=PRESET) is None
    assert db.latest_pool_version().version == 1


def test_pool_is_re_ranked_once_per_batch_after_the_cold_start(db, add_arch):
    init_pool(db, [add_arch(db, origin="baseline")])
    policy = PoolPolicy(pool_size=5, cold_start=10, update_every=5)
    updated_at = []
    for done in range(0, 31):
        # a new result arrives before every check
        scored_pool(db, add_arch, 1)
        version = maybe_update(db, policy, done, preset=PRESET)
        if version is not None:
            updated_at.append(done)
            assert version.experiments_seen == done and len(version.members) == 5
    assert updated_at == [10, 15, 20, 25, 30]
    assert db.latest_pool_version().version == 1 + len(updated_at)


def test_update_ranks_by_explore_fitness_of_the_study_preset_only(db, add_arch):
    ids = [add_arch(db) for _ in range(4)]
    db.add_score(ids[0], "explore", PRESET, 1.0, {})
    db.add_score(ids[1], "explore", PRESET, 3.0, {})
    db.add_score(ids[2], "explore", "other", 9.0, {})
    db.add_score(ids[3], "verify", PRESET, 9.0, {})
    pool = maybe_update(db, PoolPolicy(cold_start=0), 1, preset=PRESET)
    assert [(m.architecture_id, m.fitness) for m in pool.members] == [(ids[1], 3.0), (ids[0], 1.0)]


def test_random_selection_reaches_every_scored_architecture(db, add_arch):
    ids = scored_pool(db, add_arch, 20)
    unscored_or_elsewhere = [add_arch(db), *scored_pool(db, add_arch, 3, preset="other")]
    init_pool(db, ids[:5], preset=PRESET)
    policy = PoolPolicy(selection="random")
    rng = random.Random(1)
    parents = Counter()
    for _ in range(1000):
        parent, refs = sample(db, policy, rng, preset=PRESET)
        parents[parent] += 1
        assert parent not in refs and set(refs) <= set(ids[:5])
    assert set(parents) == set(ids)
    assert not set(parents) & set(unscored_or_elsewhere)
    # roughly uniform: 50 expected per architecture
    assert min(parents.values()) > 20 and max(parents.values()) < 90


def test_random_selection_before_any_score_falls_back_to_the_pool(db, add_arch):
    seeds = [add_arch(db, origin="baseline") for _ in range(2)]
    init_pool(db, seeds)
    parent, refs = sample(db, PoolPolicy(selection="random"), random.Random(0), preset=PRESET)
    assert parent in seeds and refs == [a for a in seeds if a != parent]


def test_pool_scale_comes_from_the_preset_and_a_bad_one_fails_naming_the_field(tmp_path):
    """presets.toml scales the cold start and batching; a study's own [pool] still wins."""
    from archscout.config import ConfigError, get_preset
    from archscout.study import StudyConfig

    assert StudyConfig().pool_policy(get_preset("tiny")).model_dump(include={"cold_start", "update_every"}) == {
        "cold_start": 3, "update_every": 2}
    assert StudyConfig().pool_policy(get_preset("paper")).cold_start == 200
    own = StudyConfig.model_validate({"pool": {"cold_start": 7}})
    assert own.pool_policy(get_preset("tiny")).cold_start == 7
    extra = tmp_path / "presets.toml"
    extra.write_text(get_preset_text("mine", "pool = { cold_start = 1, update_every = 0 }"))
    with pytest.raises(ConfigError, match="update_every"):
        get_preset("mine", extra)
    extra.write_text(get_preset_text("mine", ""))
    assert get_preset("mine", extra).pool.model_dump() == {"cold_start": 200, "update_every": 50}


def get_preset_text(name: str, pool_line: str) -> str:
    return (f'[preset.{name}]\n{pool_line}\n[[preset.{name}.tasks]]\nname = "mqar"\nkind = "mqar"\n'
            'seq_len = 64\nvocab_size = 128\nnum_kv_pairs = 8\n')
