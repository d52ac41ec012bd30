"""Fork without end. The first refused fork is recorded in the scratch directory as proof that the
process limit, not the timeout, is what held the bomb."""

import os

recorded = False
while True:
    try:
        os.fork()
    except OSError:
        if not recorded:
            recorded = True
            try:
                with open(os.path.join(os.environ["HOME"], "fork_refused"), "a") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError:
                pass
