"""Open a TCP connection to the port given as the second argument on 127.0.0.1 and say hello."""

import socket
import sys

with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as conn:
    conn.sendall(b"exfiltrated secret\n")
print("connected")
