"""The three ways data comes back from a sandboxed command, each bounded so that a hostile command
cannot exhaust the parent: stdout/stderr (head and tail kept, middle dropped), the supervisor's
status lines (JSON objects on a pipe), and the result file in the scratch directory (size-capped,
never followed through a symlink)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

RESULT_CAP_BYTES = 64 * 2**20  # a larger result file is ignored (result_bytes=None)


class HeadTail:
    """Keeps the first and the last `cap/2` bytes of a stream; memory stays O(cap) whatever the
    command prints."""

    def __init__(self, cap_bytes: int):
        self.half = max(cap_bytes // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            # trimming only past 2x keeps the cost of `del` amortised over many chunks
            if len(self.tail) > 2 * self.half:
                del self.tail[: -self.half]

    def text(self) -> str:
        tail = bytes(self.tail[-self.half:])
        dropped = self.total - len(self.head) - len(tail)
        middle = f"\n[... {dropped} bytes dropped by the sandbox ...]\n" if dropped else ""
        return self.head.decode(errors="replace") + middle + tail.decode(errors="replace")


def pump(stream, sink: HeadTail) -> None:
    """Read a pipe until EOF (all writers gone); run in a thread per stream so that a command
    blocked on a full pipe never stalls, and never fills a disk."""
    fd = stream.fileno()
    while chunk := os.read(fd, 1 << 16):
        sink.feed(chunk)


def read_status(fd: int) -> dict:
    """The supervisor's status lines merged ({"started": 1} first, the exit report last), or {}
    when it never got going. Non-blocking: an escaped process could still hold the write end."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            data += chunk
            if len(data) > 65536:
                break
    status: dict = {}
    for line in data.decode(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError, TypeError, ValueError):
            status.update(json.loads(line))
    return status


def read_result(path: Path) -> bytes | None:
    # O_NOFOLLOW / O_NONBLOCK: a symlink to a host file or a FIFO planted by the command must not
    # make the parent read a secret or block
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > RESULT_CAP_BYTES:
            return None
        return f.read(RESULT_CAP_BYTES + 1)[:RESULT_CAP_BYTES]
