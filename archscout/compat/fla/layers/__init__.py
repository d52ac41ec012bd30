"""fla.layers: only the padding helpers (`fla.layers.utils`) candidate layers import."""

from archscout.compat.fla.layers import utils

__all__ = ["utils"]
