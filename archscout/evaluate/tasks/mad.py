"""Three tasks of the MAD suite (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures"; reference code athms/mad-lab, `mad/data/instances.py`): selective copying, noisy
in-context recall and fuzzy in-context recall. Re-implemented here; layouts follow mad-lab.

- Selective copying: `num_tokens_to_copy` content tokens scattered among blank tokens, then a copy
  token, then one blank per token to copy; at those final blanks the model must emit the content
  tokens in order. Vocabulary: content [0, V-2), blank V-2, copy V-1. Inputs and targets are
  aligned, not shifted (mad-lab's convention): y[t] is the answer for the blank at x[t].
- Noisy recall: two-token slots, each a key-value pair or (with probability `frac_noise`) two noise
  tokens; a key keeps one value within a sequence; the last slot repeats a key already shown.
  Vocabulary: keys [0, K), values [K, V-N), noise [V-N, V) with N = noise_vocab_size and
  K = (V-N)//2. Multi-query (mad-lab's default): every value whose key appeared before is scored.
- Fuzzy recall: as noisy recall, but keys are motifs of 1..k_motif_size distinct key tokens and
  values motifs of 1..v_motif_size value tokens; test sequences use keys of exactly k_motif_size
  (mad-lab's "always prompt at the maximum key size"). Sequences are left-padded with V-1. The noise
  vocabulary is reserved only when frac_noise > 0.

Deviations from mad-lab, all deliberate: only answer positions are scored in training too (mad-lab
trains recall on every next token); each sequence draws its pairs from `num_kv_pairs` distinct keys
(mad-lab: the whole key vocabulary, which is the same thing for noisy recall at its defaults, e.g.
vocab 32, noise 16 -> 8 keys); x is exactly seq_len tokens.
"""

from __future__ import annotations

from math import perm

import numpy as np

from archscout.config import TaskSpec
from archscout.evaluate.tasks.common import IGNORE, TaskDataError
from archscout.evaluate.tasks.mqar import sample_distinct


def _fail(spec: TaskSpec, message: str) -> TaskDataError:
    return TaskDataError(f"task '{spec.name}' ({spec.kind}): {message}")


def _check_noise(spec: TaskSpec) -> None:
    if not 0 <= spec.frac_noise < 1:
        raise _fail(spec, f"frac_noise must be in [0, 1), got {spec.frac_noise}")



def selective_copy_generator(spec: TaskSpec):
    V, L, n = spec.vocab_size, spec.seq_len, spec.num_tokens_to_copy
    if V < 3:
        raise _fail(spec, f"vocab_size must be >= 3 (content, blank, copy tokens), got {V}")
    if n < 1 or L <= 2 * n + 1:
        raise _fail(spec, f"needs num_tokens_to_copy >= 1 and seq_len > 2 * num_tokens_to_copy + 1, got {n}, {L}")
    blank, copy = V - 2, V - 1
    num_blank = L - 2 * n - 1

    def generate(rng: np.random.Generator, num_examples: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
        B = num_examples
        to_copy = rng.integers(0, V - 2, size=(B, n))  # [B, n]
        # mad-lab inserts each blank before a uniformly chosen content token
        blanks_before = rng.multinomial(num_blank, np.full(n, 1.0 / n), size=B)  # [B, n]
        pos = np.arange(n) + np.cumsum(blanks_before, axis=1)  # [B, n], all < L - n - 1
        x = np.full((B, L), blank, dtype=np.int64)
        x[np.arange(B)[:, None], pos] = to_copy
        x[:, L - n - 1] = copy
        y = np.full((B, L), IGNORE, dtype=np.int64)
        y[:, L - n :] = to_copy
        return x, y

    return generate, V - 2



def noisy_recall_generator(spec: TaskSpec):
    V, L, N, n = spec.vocab_size, spec.seq_len, spec.noise_vocab_size, spec.num_kv_pairs
    _check_noise(spec)
    if N < 1:
        # a noise token also pads an even seq_len to whole slots, so the noise vocabulary must exist
        raise _fail(spec, f"noise_vocab_size must be >= 1, got {N}")
    ns = V - N  # keys and values
    K = ns // 2
    if K < 1 or ns - K < 1:
        raise _fail(spec, f"vocab_size {V} leaves no key/value tokens after {N} noise tokens")
    if not 1 <= n <= K:
        raise _fail(spec, f"num_kv_pairs must be in [1, {K}] (key tokens in vocab {V} - noise {N}), got {n}")
    lead = (L + 1) % 2  # one noise token in front when L + 1 tokens are not whole slots
    S = (L + 1) // 2  # two-token slots; the last is the probe
    if S < 2:
        raise _fail(spec, f"seq_len {L} is too short for a pair and a probe")

    def generate(rng: np.random.Generator, num_examples: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
        B = num_examples
        rows = np.arange(B)[:, None]
        keys = sample_distinct(rng, B, K, n)  # [B, n]
        # each key's value is drawn independently (values may repeat across keys, as in mad-lab)
        values = K + rng.integers(0, ns - K, size=(B, n))  # [B, n]
        slot_key = rng.integers(0, n, size=(B, S))  # [B, S] index into keys
        noise = rng.random((B, S)) < spec.frac_noise
        # at least one real pair before the probe, and the probe slot itself is a pair
        noise[np.arange(B), rng.integers(0, S - 1, size=B)] = False
        noise[:, S - 1] = False
        pick = np.where(noise[:, : S - 1], -1.0, rng.random((B, S - 1)))
        slot_key[:, S - 1] = slot_key[np.arange(B), pick.argmax(axis=1)]  # probe = a key already shown

        shown = (slot_key[..., None] == np.arange(n)) & ~noise[..., None]  # [B, S, n]
        shown_before = (np.cumsum(shown, axis=1) - shown) > 0  # exclusive prefix
        scored = np.take_along_axis(shown_before, slot_key[..., None], axis=2)[..., 0] & ~noise  # [B, S]

        tokens = np.stack([keys[rows, slot_key], values[rows, slot_key]], axis=-1)  # [B, S, 2]
        noise_tokens = ns + rng.integers(0, N, size=(B, S, 2))
        tokens = np.where(noise[..., None], noise_tokens, tokens).reshape(B, 2 * S)
        if lead:
            tokens = np.concatenate([ns + rng.integers(0, N, size=(B, 1)), tokens], axis=1)
        x = tokens[:, :L].astype(np.int64)
        y = np.full((B, L), IGNORE, dtype=np.int64)
        key_pos = lead + 2 * np.arange(S)  # [S]; target at a key position is the next token, its value
        y[:, key_pos] = np.where(scored, values[rows, slot_key], IGNORE)
        return x, y

    return generate, ns - K


def fuzzy_recall_generator(spec: TaskSpec):
    V, L, n = spec.vocab_size, spec.seq_len, spec.num_kv_pairs
    Km, Vm, frac = spec.k_motif_size, spec.v_motif_size, spec.frac_noise
    _check_noise(spec)
    N = spec.noise_vocab_size if frac > 0 else 0
    if frac > 0 and N < 1:
        raise _fail(spec, "noise_vocab_size must be >= 1 when frac_noise > 0")
    pad = V - 1
    ns = V - 1 - N
    K = ns // 2
    if Km < 1 or Vm < 1:
        raise _fail(spec, f"k_motif_size and v_motif_size must be >= 1, got {Km}, {Vm}")
    if K < Km or ns - K < Vm:
        raise _fail(spec, f"vocab_size {V} is too small for motifs of {Km} key / {Vm} value tokens")
    # test keys all have Km tokens, so the sequence's distinct keys must exist at that size
    if not 1 <= n <= perm(K, Km):
        raise _fail(spec, f"num_kv_pairs must be in [1, {perm(K, Km)}] for {K} key tokens, got {n}")
    if L < 2 * (Km + Vm):
        raise _fail(spec, f"seq_len must be >= 2 * (k_motif_size + v_motif_size) = {2 * (Km + Vm)}, got {L}")

    max_slots = (L + 1) // 2  # every slot has at least two tokens

    def motifs(rng: np.random.Generator, count: int, vocab: int, max_size: int, fixed: bool) -> list[tuple]:
        """`count` motifs of distinct tokens from [0, vocab), of 1..max_size tokens (max_size if fixed)."""
        sizes = np.full(count, max_size) if fixed else rng.integers(1, max_size + 1, size=count)
        perms = np.argsort(rng.random((count, vocab)), axis=1)
        return [tuple(p[:s].tolist()) for p, s in zip(perms, sizes)]

    def example(rng: np.random.Generator, test: bool) -> np.ndarray:
        """Token ids [L + 1] and, per token, whether it is a scored value token: [2, L + 1]."""
        keys: list[tuple] = []
        while len(keys) < n:
            keys += [m for m in dict.fromkeys(motifs(rng, 2 * n, K, Km, test)) if m not in keys][: n - len(keys)]
        values = [tuple(K + t for t in m) for m in motifs(rng, n, ns - K, Vm, False)]
        # all per-slot randomness drawn up front: per-call Generator overhead would dominate
        pair_key = rng.integers(0, n, size=max_slots).tolist()
        is_noise = (rng.random(max_slots) < frac).tolist()
        k_len = np.full(max_slots, Km) if test else rng.integers(1, Km + 1, size=max_slots)
        noise_len = (k_len + rng.integers(1, Vm + 1, size=max_slots)).tolist()
        # without a noise vocabulary these are never used; max(N, 1) only keeps integers() valid
        noise_tok = (ns + rng.integers(0, max(N, 1), size=(max_slots, Km + Vm))).tolist()

        tokens: list[int] = []
        scored: list[bool] = []
        shown: set[int] = set()

        def add_pair(i: int) -> None:
            tokens.extend(keys[i] + values[i])
            scored.extend([False] * len(keys[i]) + [i in shown] * len(values[i]))
            shown.add(i)

        probe = int(rng.integers(n))
        budget = L + 1 - len(keys[probe]) - len(values[probe]) - (Km + Vm)
        probe_at = int(rng.integers(budget))
        for slot in range(max_slots):
            if len(tokens) >= budget:
                break
            # mad-lab plants the probe pair at a random point; forcing it before the loop can end
            # guarantees the final query was answerable
            if probe not in shown and (len(tokens) >= probe_at or len(tokens) + Km + Vm >= budget):
                add_pair(probe)
            elif is_noise[slot]:
                tokens.extend(noise_tok[slot][: noise_len[slot]])
                scored.extend([False] * noise_len[slot])
            else:
                add_pair(pair_key[slot])
        add_pair(probe)
        out = np.zeros((2, L + 1), dtype=np.int64)
        out[0, :] = pad
        out[0, L + 1 - len(tokens) :] = tokens
        out[1, L + 1 - len(tokens) :] = scored
        return out

    def generate(rng: np.random.Generator, num_examples: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
        ex = np.stack([example(rng, test) for _ in range(num_examples)])  # [B, 2, L + 1]
        tokens, scored = ex[:, 0], ex[:, 1].astype(bool)
        x = tokens[:, :-1]
        y = np.where(scored[:, 1:], tokens[:, 1:], IGNORE)
        return np.ascontiguousarray(x), y

    return generate, ns - K
