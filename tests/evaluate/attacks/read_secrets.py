"""Report the whole environment the child sees as the result."""

import json
import os

with open(os.environ["ARCHSCOUT_RESULT"], "w") as f:
    json.dump(dict(os.environ), f)
