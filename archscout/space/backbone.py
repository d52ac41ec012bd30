"""The small language-model backbone that hosts a candidate mixer.

embedding -> N x [RMSNorm -> mixer -> residual -> RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm ->
tied head. The preset sizes it; the candidate only supplies the mixer class. Auxiliary losses
returned by the mixers are summed and returned beside the logits so training can add them.
Runs only inside the worker (it constructs candidate code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archscout.config import ModelSpec
from archscout.space.contract import call_mixer, construct


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, ratio: float):
        super().__init__()
        # 2/3 keeps the parameter count of a 4x GELU MLP, rounded to a multiple of 8
        hidden = int(ratio * d_model * 2 / 3 + 7) // 8 * 8
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, mlp_ratio: float):
        super().__init__()
        self.mixer_norm = nn.RMSNorm(d_model)
        self.mixer = mixer
        self.mlp = SwiGLU(d_model, mlp_ratio) if mlp_ratio > 0 else None
        self.mlp_norm = nn.RMSNorm(d_model) if self.mlp is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        o, aux = call_mixer(self.mixer, self.mixer_norm(x))
        x = x + o
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x, aux


class Backbone(nn.Module):
    def __init__(self, mixer_cls: type[nn.Module], spec: ModelSpec, vocab_size: int, **mixer_hints):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, spec.d_model)
        self.blocks = nn.ModuleList(
            Block(construct(mixer_cls, spec.d_model, spec.num_heads, i, **mixer_hints), spec.d_model, spec.mlp_ratio)
            for i in range(spec.n_layers)
        )
        self.norm = nn.RMSNorm(spec.d_model)
        self._init_weights()

    def _init_weights(self) -> None:
        # only the backbone's own layers; the candidate's initialisation is part of its design
        nn.init.normal_(self.embed.weight, std=0.02)
        for block in self.blocks:
            if block.mlp is not None:
                nn.init.normal_(block.mlp.gate_up.weight, std=0.02)
                nn.init.normal_(block.mlp.down.weight, std=0.02 / (2 * len(self.blocks)) ** 0.5)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens [B, L] -> (logits [B, L, V], summed aux loss or None)."""
        x = self.embed(tokens)
        aux_total = None
        for block in self.blocks:
            x, aux = block(x)
            if aux is not None:
                aux_total = aux if aux_total is None else aux_total + aux
        logits = F.linear(self.norm(x), self.embed.weight)  # tied head
        return logits, aux_total

    def mixer_params(self) -> int:
        """Parameters of one mixer layer (the first), the figure the parameter budget compares."""
        return sum(p.numel() for p in self.blocks[0].mixer.parameters())

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
