"""Check whether archscout's own pid (the second argument) can be signalled, with signal 0 (the
permission check alone, so the test's process is not harmed when it can)."""

import json
import os
import sys

try:
    os.kill(int(sys.argv[2]), 0)
    outcome = "signalable"
except OSError as err:
    outcome = f"denied: {type(err).__name__}"
with open(os.environ["ARCHSCOUT_RESULT"], "w") as f:
    json.dump({"signal": outcome}, f)
