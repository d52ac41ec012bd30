"""Spin forever and ignore SIGTERM: only SIGKILL after the grace period ends it."""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    pass
