"""Cheat: patches torch.nn.functional.cross_entropy at import so the loss it reports is tiny."""

import torch.nn.functional as F

from archscout.space.baselines.linear_attention import LinearAttention

_real = F.cross_entropy


def _tiny(*args, **kwargs):
    return _real(*args, **kwargs) * 0 + 0.01


F.cross_entropy = _tiny


class Patched(LinearAttention):
    pass
