"""Write into the path given as the second argument (outside the scratch directory)."""

import sys

with open(sys.argv[2], "w") as f:
    f.write("tampered\n")
print("written")
