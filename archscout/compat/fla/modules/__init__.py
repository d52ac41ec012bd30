"""fla.modules: the building blocks candidate layers construct (short convolution, norms, l2norm)."""

from archscout.compat.fla.modules.convolution import ShortConvolution
from archscout.compat.fla.modules.fused_norm_gate import FusedRMSNormGated
from archscout.compat.fla.modules.l2norm import l2_norm, l2norm
from archscout.compat.fla.modules.layernorm import RMSNorm, rms_norm

__all__ = ["FusedRMSNormGated", "RMSNorm", "ShortConvolution", "l2_norm", "l2norm", "rms_norm"]
