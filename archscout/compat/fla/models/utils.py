"""fla.models.utils.Cache: the per-layer state cache a layer reads and updates during decoding.

fla's Cache is a `transformers.Cache` holding one dict per layer (recurrent_state, attn_state,
conv_state, ffn_state) and the number of tokens seen. This stand-in keeps the same access pattern
— `cache[layer_idx]`, `len(cache)`, `cache.update(recurrent_state=..., conv_state=...,
layer_idx=..., offset=...)`, `get_seq_length()` — without depending on transformers. The evaluator
never passes a cache (it trains full sequences); this exists so the code paths that do work.
"""

from __future__ import annotations

from typing import Any


class Cache:
    is_compileable = False

    def __init__(self, seen_tokens: int = 0, **kwargs):
        self.states: list[dict[str, Any]] = []
        self._seen_tokens = seen_tokens

    def __getitem__(self, layer_idx: int) -> dict[str, Any]:
        if layer_idx < len(self.states):
            return self.states[layer_idx]
        raise KeyError(f"Cache only has {len(self.states)} layers, attempted to access layer with index {layer_idx}")

    def __iter__(self):
        yield from self.states

    def __len__(self) -> int:
        return len(self.states)

    def update(
        self,
        recurrent_state: Any = None,
        attn_state: Any = None,
        conv_state: Any = None,
        ffn_state: Any = None,
        layer_idx: int = 0,
        offset: int | None = 1,
        cache_kwargs: dict | None = None,
    ) -> dict[str, Any]:
        state = {"recurrent_state": recurrent_state, "attn_state": attn_state,
                 "conv_state": conv_state, "ffn_state": ffn_state}
        if len(self.states) <= layer_idx:
            while len(self.states) < layer_idx:
                self.states.append({})
            self.states.append(state)
            if layer_idx == 0 and offset:
                self._seen_tokens += offset
        else:
            current = self.states[layer_idx]
            for key, value in state.items():
                if value is not None:
                    current[key] = value
            if layer_idx == 0 and offset:
                self._seen_tokens += offset
        return self.states[layer_idx]

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return 0 if len(self.states) <= (layer_idx or 0) else self._seen_tokens

    def get_max_length(self) -> int | None:
        return None

    def to_legacy_cache(self) -> tuple:
        return tuple(self.states)

    @classmethod
    def from_legacy_cache(cls, past_key_values: tuple | None = None, seen_tokens: int = 0) -> Cache:
        cache = cls(seen_tokens)
        for state in past_key_values or ():
            cache.states.append(dict(state))
        return cache
