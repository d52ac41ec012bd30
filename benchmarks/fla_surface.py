"""Which parts of the fla API (and of other libraries) a set of published candidate files uses:
the number of files importing each symbol, and of files using each calling feature the compat
package must honour. Reads ASI-Arch's published JSON (GAIR-NLP/ASI-Arch data/106.json) or a folder
of .py files; prints a table.

    python benchmarks/fla_surface.py PATH/TO/106.json
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections import Counter
from pathlib import Path

FEATURES = {
    "ShortConvolution(..., cache=, output_final_state=)": r"output_final_state\s*=",
    "cu_seqlens passed on": r"cu_seqlens\s*=\s*cu_seqlens",
    "@torch.compile": r"torch\.compile",
    "explicit bfloat16 / float16 cast": r"bfloat16|float16|\.half\(\)",
    "past_key_values.update(...)": r"past_key_values\.update\(",
    "register_buffer (often a step counter)": r"register_buffer\(",
}


def sources(path: Path) -> list[str]:
    if path.is_dir():
        return [p.read_text() for p in sorted(path.glob("*.py"))]
    return [e["program"] for e in json.loads(path.read_text()) if isinstance(e, dict) and e.get("program")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    args = parser.parse_args()
    files = sources(args.path)
    symbols: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    features: Counter[str] = Counter()
    for code in files:
        tree = ast.parse(code)
        seen, roots = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                roots.add(node.module.split(".")[0])
                seen.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                roots.update(a.name.split(".")[0] for a in node.names)
                seen.update(a.name for a in node.names)
        symbols.update(s for s in seen if s.split(".")[0] in ("fla", "transformers", "einops"))
        modules.update(roots)
        features.update(name for name, pattern in FEATURES.items() if re.search(pattern, code))
    print(f"{len(files)} files\n\nfiles  imported symbol")
    for name, n in symbols.most_common():
        print(f"{n:5d}  {name}")
    print("\nfiles  top-level module")
    for name, n in modules.most_common():
        print(f"{n:5d}  {name}")
    print("\nfiles  feature")
    for name, n in features.most_common():
        print(f"{n:5d}  {name}")


if __name__ == "__main__":
    main()
