"""A module that fails while it is being imported (run as `python -m raise_at_import`)."""


def _helper():
    raise RuntimeError("boom at import time")


_helper()
