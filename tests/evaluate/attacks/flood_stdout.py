"""Print 1 GB to stdout."""

import sys

line = b"x" * 1023 + b"\n"
block = line * 1024
for _ in range(1024):
    sys.stdout.buffer.write(block)
sys.stdout.flush()
