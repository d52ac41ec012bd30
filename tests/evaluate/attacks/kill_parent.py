"""SIGKILL whatever process started us, then linger as if nothing happened."""

import os
import signal
import time

os.kill(os.getppid(), signal.SIGKILL)
time.sleep(30)
