"""What every compat `fla.ops` function shares: fla's calling convention around archscout's ops.

fla's functions take [B, T, H, ...] tensors (or [B, H, T, ...] with `head_first=True`), an optional
`initial_state` [N, H, K, V], `output_final_state`, and `cu_seqlens` [N + 1] for N sequences packed
into a batch of one; they return (o, final_state or None), o in q's dtype and the state in float32.
`run` applies that convention to a function of whole, unpacked sequences; packed sequences are run one
at a time (a loop, where fla's kernels do them in one launch).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

SeqFn = Callable[..., tuple[Tensor, Tensor]]  # (per-token tensors..., initial_state) -> (o, state)


def run(
    fn: SeqFn,
    per_token: list[Tensor | None],
    initial_state: Tensor | None,
    output_final_state: bool,
    cu_seqlens: Tensor | None,
    head_first: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Call fn(*per_token, initial_state=...) per sequence; per_token entries are [B, T, H, ...]."""
    if head_first:
        per_token = [None if x is None else x.transpose(1, 2) for x in per_token]
    q = per_token[0]
    if cu_seqlens is None:
        o, state = fn(*per_token, initial_state=initial_state)
    else:
        if q.shape[0] != 1:
            raise ValueError(f"with cu_seqlens the batch size must be 1 (packed sequences), got {q.shape[0]}")
        bounds = [int(b) for b in cu_seqlens.tolist()]
        if initial_state is not None and initial_state.shape[0] != len(bounds) - 1:
            raise ValueError(
                f"initial_state has {initial_state.shape[0]} states for {len(bounds) - 1} sequences"
            )
        outs, states = [], []
        for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            piece = [None if x is None else x[:, start:end] for x in per_token]
            init = None if initial_state is None else initial_state[i : i + 1]
            o_i, s_i = fn(*piece, initial_state=init)
            outs.append(o_i)
            states.append(s_i)
        o, state = torch.cat(outs, dim=1), torch.cat(states, dim=0)
    o = o.to(q.dtype)
    if head_first:
        o = o.transpose(1, 2)
    return o, (state.float() if output_final_state else None)


def l2(x: Tensor, eps: float = 1e-6) -> Tensor:
    from archscout.compat.fla.modules.l2norm import l2norm

    return l2norm(x, eps)


CHUNK_SIZE = 32  # archscout's chunkwise ops; fla's kernels use 64
