"""Connect to the unix socket named by the second argument and send a line."""

import json
import os
import socket
import sys

try:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(sys.argv[2])
        conn.sendall(b"exfiltrated secret\n")
    outcome = "connected"
except OSError as err:
    outcome = f"denied: {type(err).__name__}: {err}"
with open(os.environ["ARCHSCOUT_RESULT"], "w") as f:
    json.dump({"unix": outcome}, f)
