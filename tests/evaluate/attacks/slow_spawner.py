"""Start a sleeping child every 20 ms, forever: a fork bomb slow enough to watch."""

import os
import time

while True:
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    time.sleep(0.02)
