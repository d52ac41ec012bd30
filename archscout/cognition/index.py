"""The Cognition base: curated research knowledge, retrieved by the symptom an experiment shows.

ASI-Arch grounds each new idea in "cognition": short digests of human papers, each keyed by the
problem it addresses. Here an entry is a `CognitionEntry` (one JSON file in `entries/`, or a user's
own files), and `CognitionBase.search` matches an analyst's finding ("recall collapses as the number
of key-value pairs grows") against the entries' `trigger` field only, by hybrid retrieval: BM25
(bm25s) and MiniLM cosine similarity, fused by reciprocal rank. Without the MiniLM wheel it falls
back to BM25 alone and says so in `backend`.

Not here: deciding *when* to consult the base, prompting an LLM with the hits, or reading entry
folders from a study's config (callers pass `extra_dirs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from archscout.propose.novelty import embed_texts, minilm_available

ENTRIES_DIR = Path(__file__).parent / "entries"
# Cormack, Clarke & Buettcher (2009); k=60 keeps one list's top rank from swamping the other's.
RRF_K = 60

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class CognitionError(Exception):
    """A problem the user can fix (a bad entry file, an unknown id, an empty query); one line."""


class CognitionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]  # slug, unique in a base
    title: Text
    trigger: Text  # the symptom this entry answers, worded like an analyst's finding; what search sees
    background: Text
    algorithm: Text  # the idea, key equations in plain text
    implementation: Text  # practical notes for a PyTorch token mixer (shapes, chunking, init, pitfalls)
    source: Text  # citation: authors, title, venue or arXiv id, year
    tags: list[Text] = Field(min_length=1)


@dataclass(frozen=True)
class Hit:
    entry: CognitionEntry
    score: float  # fused RRF score; higher is better
    bm25_rank: int | None  # 1-based; None when the trigger shares no term with the query
    dense_rank: int | None  # 1-based; None on the BM25-only backend


def rrf_fuse(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: score(d) = sum over lists of 1 / (k + rank). Best first, ties by id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


# Trigger text -> its MiniLM vector, shared by every base in the process so entries are encoded once.
_EMBEDDINGS: dict[str, np.ndarray] = {}


def _embed_cached(texts: list[str]) -> np.ndarray:
    missing = [t for t in dict.fromkeys(texts) if t not in _EMBEDDINGS]
    if missing:
        for text, vec in zip(missing, embed_texts(missing)):
            _EMBEDDINGS[text] = vec
    return np.stack([_EMBEDDINGS[t] for t in texts])  # [N, 384]


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), return_ids=False, show_progress=False, stopwords="en")


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "entry"
    return f"field '{field}': {first['msg']}"


def _read_file(path: Path) -> list[CognitionEntry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CognitionError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CognitionError(f"{path}: cannot read ({err})") from None
    items = data if isinstance(data, list) else [data]
    entries = []
    for i, item in enumerate(items):
        where = f"{path} [entry {i}]" if isinstance(data, list) else str(path)
        if not isinstance(item, dict):
            raise CognitionError(f"{where}: an entry must be a JSON object, got {type(item).__name__}")
        try:
            entries.append(CognitionEntry.model_validate(item))
        except ValidationError as err:
            raise CognitionError(f"{where}: {_first_error(err)}") from None
    return entries


class CognitionBase:
    """A fixed set of entries with hybrid search over their triggers.

    backend: "hybrid" (BM25 + MiniLM) or "bm25"; "auto" picks hybrid when the MiniLM wheel is
    installed. The BM25 index is built at construction (milliseconds for hundreds of entries);
    trigger embeddings are computed on the first search and cached for the process.
    """

    def __init__(self, entries: list[CognitionEntry], backend: str = "auto"):
        if backend == "auto":
            backend = "hybrid" if minilm_available() else "bm25"
        if backend not in ("hybrid", "bm25"):
            raise CognitionError(f"unknown cognition backend {backend!r}; use auto, hybrid or bm25")
        if not entries:
            raise CognitionError("the cognition base has no entries")
        self.backend = backend
        self.entries = list(entries)
        self._by_id = {e.id: e for e in self.entries}
        if len(self._by_id) != len(self.entries):
            raise CognitionError("duplicate entry ids")
        import bm25s

        self._bm25 = bm25s.BM25(method="lucene")
        self._bm25.index(_tokenize([e.trigger for e in self.entries]), show_progress=False)

    @classmethod
    def load(cls, extra_dirs: list[Path] = (), backend: str = "auto") -> CognitionBase:
        """The package's entries plus every *.json in `extra_dirs` (one entry or a list per file)."""
        files = sorted(ENTRIES_DIR.glob("*.json"))
        for folder in map(Path, extra_dirs):
            if not folder.is_dir():
                raise CognitionError(f"{folder}: not a directory of cognition entries")
            files += sorted(folder.glob("*.json"))
        entries, origin = [], {}
        for path in files:
            for entry in _read_file(path):
                if entry.id in origin:
                    raise CognitionError(f"{path}: duplicate id '{entry.id}' (also in {origin[entry.id]})")
                origin[entry.id] = path
                entries.append(entry)
        return cls(entries, backend=backend)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> CognitionEntry:
        try:
            return self._by_id[entry_id]
        except KeyError:
            raise CognitionError(f"no cognition entry with id '{entry_id}'") from None

    def _bm25_ranking(self, query: str) -> list[int]:
        tokens = [t for t in dict.fromkeys(_tokenize([query])[0]) if t in self._bm25.vocab_dict]
        if not tokens:
            return []
        scores = self._bm25.get_scores(tokens)  # [N]
        order = np.argsort(-scores, kind="stable")
        return [int(i) for i in order if scores[i] > 0]

    def _dense_ranking(self, query: str) -> list[int]:
        matrix = _embed_cached([e.trigger for e in self.entries])  # [N, 384], unit rows
        sims = matrix @ embed_texts([query])[0]  # [N] cosine
        return [int(i) for i in np.argsort(-sims, kind="stable")]

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The k entries whose triggers best match `query`, best first."""
        if not query or not query.strip():
            raise CognitionError("the search query is empty")
        if k < 1:
            raise CognitionError(f"k must be at least 1, got {k}")
        bm25 = self._bm25_ranking(query)
        dense = self._dense_ranking(query) if self.backend == "hybrid" else []
        # RRF rather than a weighted sum of scores: BM25 scores are unbounded and vary with query
        # length while cosines sit in a narrow band, so no fixed weight mixes them sensibly; ranks
        # are on one scale, and an entry both retrievers rank high wins.
        fused = rrf_fuse([[str(i) for i in bm25], [str(i) for i in dense]])
        bm25_rank = {doc: r for r, doc in enumerate(bm25, start=1)}
        dense_rank = {doc: r for r, doc in enumerate(dense, start=1)}
        return [
            Hit(self.entries[int(doc)], score, bm25_rank.get(int(doc)), dense_rank.get(int(doc)))
            for doc, score in fused[:k]
        ]
