"""fla.models: only `fla.models.utils.Cache`, which candidate layers name in type hints and update."""

from archscout.compat.fla.models import utils

__all__ = ["utils"]
