"""Start a detached grandchild (own session) that sleeps forever, report its pid, exit cleanly."""

import json
import os
import subprocess
import sys
import time

child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(10**6)", sys.argv[1]], start_new_session=True
)
time.sleep(0.3)  # let it get going before we leave
with open(os.environ["ARCHSCOUT_RESULT"], "w") as f:
    json.dump({"grandchild_pid": child.pid}, f)
