"""Try to create a file in each directory named by the remaining arguments (the study folder, the
archscout package, the venv's site-packages, the home directory); report which writes succeeded."""

import json
import os
import sys

done = {}
for folder in sys.argv[2:]:
    path = os.path.join(folder, f"tampered-{sys.argv[1]}")
    try:
        with open(path, "w") as f:
            f.write("tampered\n")
        done[folder] = "written"
    except OSError as err:
        done[folder] = f"denied: {type(err).__name__}"
with open(os.environ["ARCHSCOUT_RESULT"], "w") as f:
    json.dump(done, f)
