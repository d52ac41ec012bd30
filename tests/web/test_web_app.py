"""The dashboard server in process: every page and its .json twin, escaping, headers, token, read-only."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from fastapi.testclient import TestClient

from archscout.web.app import create_app
from archscout.web.pages import page_data
from archscout.web.study import open_readonly
XSS = "<script>alert(1)</script>"  # as in conftest.py

PAGES = ["/", "/leaderboard", "/tree", "/trends", "/failures", "/calibration"]
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def client(synthetic_study):
    with TestClient(create_app(synthetic_study), base_url=LOCAL) as c:
        yield c


def arch_ids(client) -> list[int]:
    return [n["id"] for n in client.get("/tree.json").json()["nodes"]]


def twin(path: str) -> str:
    return "/index.json" if path == "/" else f"{path}.json"


def test_every_page_and_its_json_twin_render(client):
    paths = PAGES + [f"/arch/{i}" for i in arch_ids(client)]
    for path in paths:
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        data = client.get(twin(path))
        assert data.status_code == 200, twin(path)
        assert data.headers["content-type"] == "application/json"
        # the chart block is the same data the twin serves (or derived from it), and parses as JSON
        block = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page.text, re.S)
        json.loads(block.group(1))


def test_twins_are_the_page_data(client, synthetic_study):
    study = open_readonly(synthetic_study)
    try:
        assert client.get("/leaderboard.json").json() == page_data(study, "leaderboard")
        assert client.get("/arch/2.json").json() == page_data(study, "arch", 2)
    finally:
        study.close()


def test_overview_counts_spend_and_discoveries(client):
    data = client.get("/index.json").json()
    assert data["experiments"]["done"] == 6 and data["experiments"]["failed"] == 3
    assert data["experiments"]["failed_by_reason"] == {"forward_error": 2, "duplicate": 1}
    assert data["llm"]["totals"]["calls"] == 2
    assert data["llm"]["totals"]["cost_usd"] == pytest.approx(0.0015)
    assert data["discoveries"] == 1
    assert [v["discovery"] for v in data["verification"]] == [True, False]
    assert data["config"]["preset"] == "smoke"
    html = client.get("/").text
    assert 'data-live="on"' in html and "verified discovery" in html


def test_leaderboard_is_ranked_by_fitness_with_verification_ci(client):
    rows = client.get("/leaderboard.json").json()["rows"]
    fitness = [r["fitness"] for r in rows]
    assert fitness == sorted(fitness, reverse=True)
    top = rows[0]
    assert top["verified"]["discovery"] is True
    assert top["verified"]["ci_low"] < top["verified"]["effect"] < top["verified"]["ci_high"]
    assert {"loss_term", "bench_term", "judge_term", "val_loss", "benchmark", "params", "tokens_per_s"} <= set(top)
    assert 'class="data sortable"' in client.get("/leaderboard").text


def test_tree_is_laid_out_from_the_baseline_root(client):
    data = client.get("/tree.json").json()
    nodes = {n["id"]: n for n in data["nodes"]}
    root = next(n for n in nodes.values() if n["origin"] == "baseline")
    assert root["x"] == 0 and root["parent_id"] is None
    for n in nodes.values():
        if n["parent_id"] is not None:
            assert n["x"] == nodes[n["parent_id"]]["x"] + 1
    assert sum(n["verified"] == "discovery" for n in nodes.values()) == 1
    # one polyline for all edges: 5 values per edge (4 points and a break)
    assert len(data["edges"]["x"]) == 5 * (len(nodes) - 1)


def test_trends_have_baseline_band_scaling_and_shrinkage(client):
    data = client.get("/trends.json").json()
    assert data["baseline"]["val_loss"]["n"] == 3
    assert len(data["points"]) == 8  # 6 done + 2 failed experiments that stored an architecture
    assert data["scaling"][-1]["cumulative_verified_discoveries"] == 1
    assert len(data["shrinkage"]["rows"]) == 2


def test_architecture_page_has_code_diff_runs_analyses_and_trace(client):
    first = next(n for n in client.get("/tree.json").json()["nodes"] if n["name"].startswith(XSS))
    data = client.get(f"/arch/{first['id']}.json").json()
    assert data["parent"]["name"] == "deltanet" and data["diff"].startswith("---")
    assert data["runs"][0]["curves"]["lm"]["eval"] == [[6, pytest.approx(6.1)], [12, pytest.approx(6.0)]]
    assert data["baseline_band"]["smoke"]["lm"]["seeds"] == 3
    assert {a["kind"] for a in data["analyses"]} == {"statistical", "llm"}
    llm = next(a for a in data["analyses"] if a["kind"] == "llm")
    assert llm["cognition"] == ["gated-delta-rule", "short-conv"]
    assert [c["agent"] for c in data["llm"]["calls"]] == ["planner", "analyzer"]
    html = client.get(f"/arch/{first['id']}").text
    assert 'class="hl"' in html  # Pygments
    assert "gated-delta-rule" in html and "planner" in html


def test_failures_are_grouped_by_reason_with_log_tails(client):
    data = client.get("/failures.json").json()
    assert [(g["reason"], g["count"]) for g in data["groups"]] == [("forward_error", 2), ("duplicate", 1)]
    assert "Traceback" in data["groups"][0]["items"][0]["log_tail"]
    assert "log tail" in client.get("/failures").text


def test_hostile_text_is_escaped_and_csp_forbids_inline_script(client):
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    paths = PAGES + [f"/arch/{i}" for i in arch_ids(client)]
    seen = 0
    for path in paths:
        page = client.get(path)
        assert XSS not in page.text, path
        assert "<script>" not in page.text, path  # every script tag of ours has a src or a type
        seen += escaped in page.text
        csp = page.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]*)", csp).group(1)
        assert script_src.strip() == "'self'"
        assert page.headers["x-content-type-options"] == "nosniff"
    assert seen >= 6  # names, motivations, code, logs, analyses, prompts all came through as text


def test_unknown_pages_and_ids_are_404(client):
    assert client.get("/arch/999").status_code == 404
    assert client.get("/arch/999.json").json() == {"error": "no architecture #999 in this study"}
    assert client.get("/arch/x").status_code == 404
    assert client.get("/nothing").status_code == 404
    assert client.get("/static/..%2Fapp.py").status_code == 404


def test_static_assets_are_local(client):
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert client.get("/static/app.js").status_code == 200
    assert "cdn" not in client.get("/tree").text.lower()


def test_only_get_is_allowed_and_nothing_is_written(client, synthetic_study):
    db = synthetic_study / "study.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for path in PAGES:
        assert client.post(path).status_code == 405
        assert client.delete(path).status_code == 405
        client.get(path)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_the_database_is_opened_read_only(synthetic_study):
    study = open_readonly(synthetic_study)
    try:
        with pytest.raises(Exception, match="readonly|read-only"):
            study.db.add_architecture("x = 1\n", name="x", origin="user")
    finally:
        study.close()


def test_without_token_only_loopback_host_names_are_served(synthetic_study):
    with TestClient(create_app(synthetic_study), base_url="http://evil.example:8765") as c:
        assert c.get("/").status_code == 400
    with TestClient(create_app(synthetic_study), base_url="http://localhost:8765") as c:
        assert c.get("/").status_code == 200


def test_remote_requests_need_the_token(synthetic_study):
    app = create_app(synthetic_study, token="s3cret")
    with TestClient(app, base_url="http://10.1.2.3:8765") as c:
        assert c.get("/").status_code == 401
        assert c.get("/index.json?token=wrong").status_code == 401
        assert c.get("/static/app.js").status_code == 401
        assert c.get("/", headers={"X-Archscout-Token": "s3cret"}).status_code == 200
        assert c.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/?token=s3cret")
        assert first.status_code == 200 and "archscout_token" in first.headers["set-cookie"]
        # the cookie now carries it: links and the overview's polling need no token in the URL
        assert c.get("/tree").status_code == 200


def test_real_smoke_study_pages_render(smoke_study):
    with TestClient(create_app(smoke_study), base_url=LOCAL) as c:
        ids = [n["id"] for n in c.get("/tree.json").json()["nodes"]]
        assert len(ids) >= 2
        for path in PAGES + [f"/arch/{i}" for i in ids]:
            assert c.get(path).status_code == 200, path
            assert c.get(twin(path)).status_code == 200, path


@pytest.mark.parametrize("path", ["/arch/²", "/arch/².json", "/arch/99999999999999999999",
                                  "/arch/9223372036854775808.json", "/arch/0", "/arch/-1", "/arch/1e3"])
def test_non_numeric_or_out_of_range_ids_are_404(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("host", ["localhost:8765@evil.com", "[::1]evil.com", "evil.com",
                                  "localhost.evil.com:8765", "127.0.0.1.nip.io"])
def test_host_headers_that_only_look_like_loopback_are_refused(client, host):
    response = client.get("/index.json", headers={"Host": host})
    assert response.status_code == 400
    assert "experiments" not in response.text


@pytest.mark.parametrize("host", ["localhost:8765", "127.0.0.1:8765", "[::1]:8765", "localhost"])
def test_loopback_host_headers_are_served(client, host):
    assert client.get("/index.json", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path", PAGES + ["/index.json", "/arch/1", "/static/style.css"])
def test_head_is_answered_like_get_without_a_body(client, path):
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]


def test_an_empty_token_is_refused_when_the_app_is_made(synthetic_study):
    with pytest.raises(ValueError, match="empty token"):
        create_app(synthetic_study, token="")
