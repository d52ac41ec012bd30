"""The lineage tree: every architecture under the baseline root via `parent_id`, laid out server-side.

A force-directed graph in the browser does not settle at thousands of nodes; a layered tree laid
out here costs O(n) and draws as two Plotly traces (one line trace for all edges, one marker trace
for all nodes) that stay responsive at 2,000+ nodes. The layout is a phylogram: x is the generation
(depth from the root), y is the leaf order of a depth-first walk, and each parent sits at the middle
of its children's span, so subtrees never overlap. Edges are elbows (parent → down/up → child).

Roots are the baseline(s) first, then any other architecture without a known parent (a user's own
file, an import). Drawing is in static/app.js; this module returns data only.
"""

from __future__ import annotations

from typing import Any

from archscout.store import bulk
from archscout.study import StudyHandle
from archscout.web.data import clean, explore_scores, posteriors, verified


def layout(nodes: list[dict[str, Any]]) -> None:
    """Set `x` (depth) and `y` (leaf order) on each node dict in place; nodes need `id`, `parent_id`."""
    by_id = {n["id"]: n for n in nodes}
    children: dict[int, list[int]] = {n["id"]: [] for n in nodes}
    roots = []
    for n in nodes:
        parent = n["parent_id"]
        if parent in by_id and parent != n["id"]:
            children[parent].append(n["id"])
        else:
            roots.append(n["id"])
    roots.sort(key=lambda i: (by_id[i].get("origin") != "baseline", i))
    next_leaf = 0
    seen: set[int] = set()
    # iterative post-order walk: a chain of thousands of generations must not hit the recursion limit
    for root in roots:
        stack: list[tuple[int, int, bool]] = [(root, 0, False)]
        while stack:
            node_id, depth, expanded = stack.pop()
            node = by_id[node_id]
            if expanded:
                kids = [k for k in children[node_id] if by_id[k].get("_placed")]
                if kids:
                    node["y"] = (by_id[kids[0]]["y"] + by_id[kids[-1]]["y"]) / 2
                else:
                    node["y"] = float(next_leaf)
                    next_leaf += 1
                node["_placed"] = True
                continue
            if node_id in seen:
                continue
            seen.add(node_id)
            node["x"] = depth
            stack.append((node_id, depth, True))
            for kid in reversed(children[node_id]):
                if kid not in seen:
                    stack.append((kid, depth + 1, False))
    for n in nodes:
        n.pop("_placed", None)


def edges(nodes: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Elbow segments parent → child as one polyline with None breaks (Plotly's gap convention)."""
    by_id = {n["id"]: n for n in nodes}
    xs: list[float | None] = []
    ys: list[float | None] = []
    for n in nodes:
        parent = by_id.get(n["parent_id"])
        if parent is None or parent is n:
            continue
        mid = parent["x"] + 0.5
        xs += [parent["x"], mid, mid, n["x"], None]
        ys += [parent["y"], parent["y"], n["y"], n["y"], None]
    return {"x": xs, "y": ys}


def lineage(study: StudyHandle) -> dict[str, Any]:
    rows = bulk.nodes(study.db)
    scores = explore_scores(study)
    ver = verified(study)
    posts = posteriors(study)
    nodes = []
    for r in rows:
        v = ver.get(r.id)
        nodes.append({
            "id": r.id, "name": r.name, "origin": r.origin, "parent_id": r.parent_id,
            "fitness": scores[r.id][0] if r.id in scores else None,
            "posterior": posts.get(r.id),  # over all its runs (seeds, rungs); colour stays the one run
            "verified": None if v is None else ("discovery" if v["discovery"] else "not significant"),
        })
    layout(nodes)
    return clean({"nodes": nodes, "edges": edges(nodes), "count": len(nodes),
                  "depth": max((n["x"] for n in nodes), default=0)})
