"""Write one file until the disk is full (or something stops it)."""

import os

chunk = b"\0" * 2**20
with open(os.path.join(os.environ["HOME"], "big.bin"), "wb") as f:
    while True:
        f.write(chunk)
        f.flush()
