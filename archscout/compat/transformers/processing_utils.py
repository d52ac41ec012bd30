"""transformers.processing_utils as candidate files use it: `Unpack` for `**kwargs: Unpack[...]` hints."""

from typing import Unpack

__all__ = ["Unpack"]
