"""How the dashboard copes with a large study: lineage layout and page times at N architectures.

    python benchmarks/dashboard_scale.py [--n 2000] [--repeats 5]

Writes a synthetic study (N architectures in a random lineage whose parents are drawn from recent
architectures, as a pool of the best tends to do, each with an exploration score) into a temporary
folder, then prints the median of --repeats timings of: the server-side tree layout alone, and the
`/tree`, `/tree.json`, `/leaderboard` and `/` responses through the real FastAPI app (in-process
client, so no network time). Browser rendering time is not included.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from archscout.study import open_study
from archscout.web.app import create_app
from archscout.web.tree import edges, layout


def lineage(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    nodes = [{"id": 1, "parent_id": None, "origin": "baseline"}]
    nodes += [{"id": i, "parent_id": rng.randint(max(1, i - 40), i - 1), "origin": "offline"} for i in range(2, n + 1)]
    return nodes


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="archscout-dash-")) / "study"
    study = open_study(folder, {"preset": "smoke"}, create=True)
    with study.db.transaction() as tx:
        for node in lineage(args.n):
            arch = study.db.add_architecture(f"x = {node['id']}\n", name=f"a{node['id']}", origin=node["origin"],
                                             parent_id=node["parent_id"], conn=tx)
            study.db.add_score(arch, "explore", "smoke", (node["id"] % 97) / 97, {}, conn=tx)
    study.close()

    print(f"{args.n} architectures, median of {args.repeats}:")
    print(f"  tree layout + edges (server side)  {timed(lambda: (layout(n := lineage(args.n)), edges(n)), args.repeats) * 1000:8.1f} ms")
    with TestClient(create_app(folder), base_url="http://127.0.0.1") as client:
        for path in ("/tree", "/tree.json", "/leaderboard", "/"):
            def get(path=path):
                assert client.get(path).status_code == 200
            print(f"  GET {path:<32} {timed(get, args.repeats) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
