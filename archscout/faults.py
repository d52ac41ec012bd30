"""Crash points for the resume tests: `ARCHSCOUT_FAULT=point` SIGKILLs the process at `fault(point)`.

The loop and the ladder call it right after a commit (or in the middle of work) so that a test can
kill the driver exactly there and check that `archscout run` resumes without losing or repeating
anything. Unset, it does nothing.
"""

from __future__ import annotations

import os
import signal


def fault(point: str) -> None:
    if os.environ.get("ARCHSCOUT_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
