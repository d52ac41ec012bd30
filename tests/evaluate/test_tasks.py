"""Proxy-task data: determinism, held-out sets, task structure checked by hand-written oracles, and
the language-modelling cache (small corpora, temporary cache folders)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from archscout.config import OptimSpec, TaskSpec, task_spec
from archscout.evaluate.tasks import IGNORE, TaskDataError, TaskNotPrepared, build_task, prepare

SYNTHETIC = {
    "mqar": dict(seq_len=64, vocab_size=128, num_kv_pairs=8),
    "selective_copy": dict(seq_len=64, vocab_size=16, num_tokens_to_copy=8),
    "noisy_recall": dict(seq_len=64, vocab_size=32, num_kv_pairs=8, noise_vocab_size=16, frac_noise=0.4),
    "fuzzy_recall": dict(seq_len=64, vocab_size=32, num_kv_pairs=6, k_motif_size=3, v_motif_size=3),
}


def synthetic_spec(kind: str, **over) -> TaskSpec:
    fields = {**SYNTHETIC[kind], "test_examples": 200, "optim": OptimSpec(batch_size=16), **over}
    return task_spec(name=kind, kind=kind, **fields)


def mqar_oracle(x: np.ndarray, spec: TaskSpec) -> np.ndarray:
    pred = np.full_like(x, -1)
    for b, row in enumerate(x):
        table = {int(row[i]): int(row[i + 1]) for i in range(0, 2 * spec.num_kv_pairs, 2)}
        for t in range(2 * spec.num_kv_pairs, len(row)):
            pred[b, t] = table.get(int(row[t]), -1)
    return pred


def copy_oracle(x: np.ndarray, spec: TaskSpec) -> np.ndarray:
    blank, copy = spec.vocab_size - 2, spec.vocab_size - 1
    pred = np.full_like(x, -1)
    for b, row in enumerate(x):
        seen: list[int] = []
        since_copy = None
        for t, tok in enumerate(row.tolist()):
            if since_copy is not None and tok == blank:
                pred[b, t] = seen[since_copy] if since_copy < len(seen) else -1
                since_copy += 1
            elif tok == copy:
                since_copy = 0
            elif tok != blank:
                seen.append(tok)
    return pred


def noisy_oracle(x: np.ndarray, spec: TaskSpec) -> np.ndarray:
    ns = spec.vocab_size - spec.noise_vocab_size
    K = ns // 2
    pred = np.full_like(x, -1)
    for b, row in enumerate(x.tolist()):
        table: dict[int, int] = {}
        for t, tok in enumerate(row):
            if t > 0 and row[t - 1] < K and K <= tok < ns:
                table[row[t - 1]] = tok
            if tok < K:
                pred[b, t] = table.get(tok, -1)
    return pred


def fuzzy_oracle(x: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """Parses runs of key tokens and value tokens; noise and padding end a pair."""
    ns = spec.vocab_size - 1 - (spec.noise_vocab_size if spec.frac_noise > 0 else 0)
    K = ns // 2
    pred = np.full_like(x, -1)
    for b, row in enumerate(x.tolist()):
        table: dict[tuple, tuple] = {}
        key: list[int] = []
        val: list[int] = []
        prev = None
        for t, tok in enumerate(row):
            cls = "k" if tok < K else "v" if tok < ns else "o"
            if prev == "v" and cls != "v":
                table[tuple(key)] = tuple(val)
            if cls == "k":
                key = key + [tok] if prev == "k" else [tok]
                known = table.get(tuple(key))
                pred[b, t] = known[0] if known else -1
            elif cls == "v" and key:
                val = val + [tok] if prev == "v" else [tok]
                known = table.get(tuple(key))
                pred[b, t] = known[len(val)] if known and len(val) < len(known) else -1
            else:
                key, val = [], []
            prev = cls
    return pred


ORACLES = {
    "mqar": mqar_oracle,
    "selective_copy": copy_oracle,
    "noisy_recall": noisy_oracle,
    "fuzzy_recall": fuzzy_oracle,
}


def answer_range(spec: TaskSpec) -> tuple[int, int]:
    V = spec.vocab_size
    if spec.kind == "mqar":
        return V // 2, V
    if spec.kind == "selective_copy":
        return 0, V - 2
    ns = V - spec.noise_vocab_size if spec.kind == "noisy_recall" else V - 1
    return ns // 2, ns


class OracleModel(torch.nn.Module):
    def __init__(self, spec: TaskSpec):
        super().__init__()
        self.spec = spec

    def forward(self, tokens):
        pred = torch.from_numpy(ORACLES[self.spec.kind](tokens.numpy(), self.spec)).clamp(min=0)
        return torch.nn.functional.one_hot(pred, self.spec.vocab_size).float(), None


class RandomAnswerModel(torch.nn.Module):
    """Guesses uniformly among the task's answer tokens: accuracy ~ 1 / num_values."""

    def __init__(self, spec: TaskSpec):
        super().__init__()
        self.spec, self.lo, self.hi = spec, *answer_range(spec)

    def forward(self, tokens):
        logits = torch.full((*tokens.shape, self.spec.vocab_size), -1e9)
        logits[..., self.lo : self.hi] = torch.rand(*tokens.shape, self.hi - self.lo)
        return logits, None


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_batches_are_deterministic_per_seed_and_step(kind):
    spec = synthetic_spec(kind)
    a, b, c = build_task(spec, 0, None), build_task(spec, 0, None), build_task(spec, 1, None)
    x0, y0 = a.train_batch(5)
    assert x0.shape == y0.shape == (16, spec.seq_len) and x0.dtype == y0.dtype == torch.int64
    assert torch.equal(x0, b.train_batch(5)[0]) and torch.equal(y0, b.train_batch(5)[1])
    assert not torch.equal(x0, a.train_batch(6)[0])
    assert not torch.equal(x0, c.train_batch(5)[0])
    assert int(x0.min()) >= 0 and int(x0.max()) < spec.vocab_size
    assert (y0 != IGNORE).any(dim=1).all(), "every training sequence has something to score"


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_test_set_is_fixed_per_seed_and_apart_from_training(kind):
    spec = synthetic_spec(kind)
    a, b, c = build_task(spec, 3, None), build_task(spec, 3, None), build_task(spec, 4, None)
    assert a.test_x.shape == (200, spec.seq_len)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.test_x, c.test_x)
    assert not torch.equal(a.test_x[:16], a.train_batch(0)[0])


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_targets_are_recoverable_from_inputs_by_an_oracle(kind):
    spec = synthetic_spec(kind)
    task = build_task(spec, 0, None)
    for x, y in [task.train_batch(0), task.train_batch(1), (task.test_x, task.test_y)]:
        pred = ORACLES[kind](x.numpy(), spec)
        mask = y.numpy() != IGNORE
        np.testing.assert_array_equal(pred[mask], y.numpy()[mask])


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_evaluate_is_one_for_an_oracle_and_chance_for_random_answers(kind):
    spec = synthetic_spec(kind)
    task = build_task(spec, 0, None)
    oracle = OracleModel(spec).train()
    assert task.evaluate(oracle) == 1.0
    assert oracle.training, "evaluate restores the model's mode"
    torch.manual_seed(0)
    chance = 1 / task.num_values
    assert task.evaluate(RandomAnswerModel(spec)) == pytest.approx(chance, rel=0.3)


def test_mqar_layout_follows_zoology():
    spec = synthetic_spec("mqar", seq_len=128, vocab_size=512, num_kv_pairs=16)
    x, y = build_task(spec, 0, None).train_batch(0)
    n, half = spec.num_kv_pairs, spec.vocab_size // 2
    keys, values = x[:, 0 : 2 * n : 2], x[:, 1 : 2 * n : 2]
    assert ((keys >= 1) & (keys < half)).all() and ((values >= half) & (values < 512)).all()
    assert all(len(set(r.tolist())) == n for r in keys), "keys are distinct within a sequence"
    assert (y[:, : 2 * n] == IGNORE).all()
    assert ((y != IGNORE).sum(dim=1) == n).all(), "every key is queried once"
    for b in range(len(x)):
        table = dict(zip(keys[b].tolist(), values[b].tolist()))
        for t in torch.nonzero(y[b] != IGNORE).flatten().tolist():
            assert table[int(x[b, t])] == int(y[b, t])


def test_mqar_power_law_puts_most_queries_near_the_context():
    spec = synthetic_spec("mqar", seq_len=256, vocab_size=1024, num_kv_pairs=8, power_a=0.01)
    _, y = build_task(spec, 0, None).train_batch(0)
    pos = torch.nonzero(y != IGNORE)[:, 1].float()
    assert pos.median() < 16 + (256 - 16) / 4


# MQAR's batch generation time (target < 5 ms) is printed by benchmarks/timings.py, not asserted here.


def test_selective_copy_layout_follows_mad():
    spec = synthetic_spec("selective_copy", seq_len=256, num_tokens_to_copy=16)
    x, y = build_task(spec, 0, None).train_batch(0)
    n, L = 16, 256
    assert (x[:, L - n - 1] == spec.vocab_size - 1).all() and (x[:, L - n :] == spec.vocab_size - 2).all()
    assert ((x[:, : L - n - 1] < spec.vocab_size - 2).sum(dim=1) == n).all()
    assert (y[:, : L - n] == IGNORE).all() and (y[:, L - n :] != IGNORE).all()


@pytest.mark.parametrize(
    "kind,over",
    [
        ("mqar", dict(num_kv_pairs=40)),
        ("noisy_recall", dict(num_kv_pairs=9)),
        ("fuzzy_recall", dict(seq_len=8)),
        ("selective_copy", dict(num_tokens_to_copy=40)),
    ],
)
def test_impossible_synthetic_parameters_are_refused_with_the_task_name(kind, over):
    with pytest.raises(TaskDataError, match=kind):
        build_task(synthetic_spec(kind, **over), 0, None)


# language modelling


def lm_spec(**over) -> TaskSpec:
    fields = dict(seq_len=64, vocab_size=512, corpus_chars=200_000, eval_tokens=4096, optim=OptimSpec(batch_size=8))
    return task_spec(name="lm", kind="lm", **{**fields, **over})


@pytest.fixture(scope="module")
def kjv_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    prepare(lm_spec(), cache)
    return cache


class UniformModel(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.batches = vocab, []

    def forward(self, tokens):
        self.batches.append(len(tokens))
        return torch.zeros(*tokens.shape, self.vocab), None


def test_lm_tokens_are_in_vocab_and_batches_reproducible(kjv_cache):
    task = build_task(lm_spec(), 0, kjv_cache)
    x, y = task.train_batch(7)
    assert x.shape == y.shape == (8, 64) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1]), "targets are the next tokens"
    assert torch.equal(x, build_task(lm_spec(), 0, kjv_cache).train_batch(7)[0])
    assert not torch.equal(x, build_task(lm_spec(), 1, kjv_cache).train_batch(7)[0])
    for arr in (task.train_tokens, task.val_x):
        assert 0 <= int(np.asarray(arr).min()) and int(np.asarray(arr).max()) < 512


def test_lm_held_out_split_is_the_disjoint_tail_of_the_corpus(kjv_cache):
    from archscout.evaluate.tasks.lm import load_kjv

    task = build_task(lm_spec(), 0, kjv_cache)
    text = load_kjv()[:200_000]
    train_text = task.decode(task.train_tokens)
    val_text = task.decode(np.load(task.folder / "val.npy"))
    assert train_text + val_text == text
    assert train_text.endswith("\n") and 0.04 < len(val_text) / len(text) < 0.06
    assert val_text[:200] not in train_text
    assert task.val_x.numel() == 4096 and torch.equal(task.val_x.flatten()[1:], task.val_y.flatten()[:-1])


def test_lm_uniform_logits_score_ln_vocab_in_small_batches(kjv_cache):
    task = build_task(lm_spec(seq_len=16, eval_tokens=16 * 100), 0, kjv_cache)
    model = UniformModel(512)
    assert task.evaluate(model) == pytest.approx(math.log(512), rel=1e-5)
    assert max(model.batches) <= 64 and sum(model.batches) == 100


def test_lm_prepare_is_idempotent_and_build_task_writes_nothing(kjv_cache):
    before = sorted((p, p.stat().st_mtime_ns) for p in kjv_cache.rglob("*"))
    prepare(lm_spec(), kjv_cache)
    task = build_task(lm_spec(), 2, kjv_cache)
    task.train_batch(0)
    task.evaluate(UniformModel(512))
    assert sorted((p, p.stat().st_mtime_ns) for p in kjv_cache.rglob("*")) == before


def test_lm_build_task_without_prepare_says_so(tmp_path):
    with pytest.raises(TaskNotPrepared, match="prepare"):
        build_task(lm_spec(), 0, tmp_path)


def test_lm_user_text_files_are_a_corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    files = []
    for i in range(2):
        path = tmp_path / f"part{i}.txt"
        path.write_text("\n".join(" ".join(rng.choice(words, size=12)) for _ in range(800)) + "\n")
        files.append(str(path))
    spec = lm_spec(corpus=files, corpus_chars=None, vocab_size=300, seq_len=32, eval_tokens=256)
    prepare(spec, tmp_path / "cache")
    task = build_task(spec, 0, tmp_path / "cache")
    assert task.decode(task.train_tokens[:40]).startswith(open(files[0]).read()[:20])
    assert task.evaluate(UniformModel(300)) == pytest.approx(math.log(300), rel=1e-5)
    # editing a corpus file makes a new cache entry instead of reusing stale tokens
    with open(files[1], "a") as fh:
        fh.write("zeta zeta zeta\n")
    with pytest.raises(TaskNotPrepared):
        build_task(spec, 0, tmp_path / "cache")


def test_lm_missing_corpus_file_is_a_one_line_error_naming_it(tmp_path):
    spec = lm_spec(corpus=[str(tmp_path / "nope.txt")])
    with pytest.raises(ValueError, match="nope.txt") as err:
        prepare(spec, tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_lm_concurrent_prepares_build_one_consistent_entry(tmp_path):
    spec = lm_spec(corpus_chars=60_000, vocab_size=300)
    errors = []

    def run():
        try:
            prepare(spec, tmp_path)
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entries = [p for p in (tmp_path / "lm").iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    assert build_task(spec, 0, tmp_path).train_batch(0)[0].shape == (8, 64)


def test_a_field_given_to_the_wrong_task_kind_fails_when_the_preset_loads_naming_it(tmp_path):
    """Each kind is its own model: a corpus on an MQAR task, a typo, or an unknown kind is refused."""
    from archscout.config import ConfigError, LMTask, MQARTask, get_preset

    assert isinstance(task_spec(name="m", kind="mqar"), MQARTask) and isinstance(task_spec(name="l", kind="lm"), LMTask)
    extra = tmp_path / "presets.toml"
    for field, line in (("corpus", 'corpus = ["kjv"]'), ("num_kv_pair", "num_kv_pair = 8")):
        extra.write_text(f'[preset.mine]\n[[preset.mine.tasks]]\nname = "m"\nkind = "mqar"\n{line}\n')
        with pytest.raises(ConfigError, match=rf"preset.mine.*'tasks\.0\.mqar\.{field}'"):
            get_preset("mine", extra)
    extra.write_text('[preset.mine]\n[[preset.mine.tasks]]\nname = "m"\nkind = "mqr"\n')
    with pytest.raises(ConfigError, match="tasks.0"):
        get_preset("mine", extra)
    extra.write_text('[preset.mine]\n[[preset.mine.tasks]]\nname = "m"\nkind = "selective_copy"\nnum_tokens_to_copy = 4\n')
    assert get_preset("mine", extra).tasks[0].num_tokens_to_copy == 4
