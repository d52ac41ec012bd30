"""The lineage layout at scale (2,000 architectures) and the `archscout serve` host/token guard."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from archscout.cli import app
from archscout.study import open_study
from archscout.web.app import create_app
from archscout.web.tree import edges, layout


def random_lineage(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    nodes = [{"id": 1, "parent_id": None, "origin": "baseline"}]
    # parents drawn from recent architectures, as a pool of the best tends to do
    nodes += [{"id": i, "parent_id": rng.randint(max(1, i - 40), i - 1), "origin": "offline"} for i in range(2, n + 1)]
    return nodes


def test_layout_of_2000_nodes_never_overlaps():
    # its speed is measured by benchmarks/dashboard_scale.py, not asserted here
    nodes = random_lineage(2000)
    layout(nodes)
    lines = edges(nodes)
    by_id = {n["id"]: n for n in nodes}
    kids = {n["parent_id"] for n in nodes}
    leaves = [n for n in nodes if n["id"] not in kids]
    assert len({n["y"] for n in leaves}) == len(leaves)  # one row per leaf
    for n in nodes[1:]:
        assert n["x"] == by_id[n["parent_id"]]["x"] + 1
    assert len(lines["x"]) == 5 * 1999


def test_a_deep_chain_does_not_recurse():
    nodes = [{"id": 1, "parent_id": None}] + [{"id": i, "parent_id": i - 1} for i in range(2, 5001)]
    layout(nodes)
    assert nodes[-1]["x"] == 4999


def test_tree_page_of_a_2000_architecture_study(tmp_path):
    study = open_study(tmp_path / "big", {"preset": "smoke"}, create=True)
    with study.db.transaction() as tx:
        for node in random_lineage(2000):
            arch = study.db.add_architecture(f"x = {node['id']}\n", name=f"a{node['id']}", origin=node["origin"],
                                             parent_id=node["parent_id"], conn=tx)
            study.db.add_score(arch, "explore", "smoke", (node["id"] % 97) / 97, {}, conn=tx)
    study.close()
    with TestClient(create_app(tmp_path / "big"), base_url="http://127.0.0.1") as c:
        assert c.get("/tree").status_code == 200
        assert len(c.get("/tree.json").json()["nodes"]) == 2000
        assert c.get("/leaderboard").status_code == 200


def test_serve_refuses_a_remote_host_without_allow_remote(synthetic_study):
    result = CliRunner().invoke(app, ["serve", "--study", str(synthetic_study), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_serve_allow_remote_prints_a_token_and_requires_it(synthetic_study, monkeypatch):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda web, host, port, **kw: served.update(app=web, host=host, port=port))
    result = CliRunner().invoke(app, ["serve", "--study", str(synthetic_study), "--host", "0.0.0.0", "--allow-remote",
                                      "--port", "9999"])
    assert result.exit_code == 0, result.output
    assert served["host"] == "0.0.0.0" and served["port"] == 9999
    token = result.output.split("?token=")[1].split()[0]
    with TestClient(served["app"], base_url="http://192.0.2.1:9999") as c:
        assert c.get("/").status_code == 401
        assert c.get(f"/?token={token}").status_code == 200


def test_serve_a_folder_without_a_study_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--study", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no study" in result.output
