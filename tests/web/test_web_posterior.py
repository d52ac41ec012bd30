"""The posterior fitness (mean, 90 % interval, runs combined) on every dashboard page that shows
fitness, over real HTTP: `archscout serve` on the synthetic study, pages fetched with urllib, the
printed numbers checked against the study's own posteriors (ladder.study_posteriors)."""

from __future__ import annotations

import html
import json
import re
import urllib.request
from pathlib import Path

import pytest

from archscout.ladder import study_posteriors
from archscout.web.study import open_readonly

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(synthetic_study, serve_study):
    with serve_study(synthetic_study) as url:
        yield url


@pytest.fixture(scope="module")
def posts(synthetic_study):
    study = open_readonly(synthetic_study)
    try:
        return study_posteriors(study)
    finally:
        study.close()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        return resp.read().decode()


def _shown(p) -> str:
    return f"{p.mean:.4f} [{p.lo:.4f}, {p.hi:.4f}] ({p.n} run{'' if p.n == 1 else 's'})"


def _cells(page: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r'<td class="posterior"[^>]*>(.*?)</td>', page, re.S)]


def test_overview_and_leaderboard_show_mean_interval_and_runs(served, posts):
    best = json.loads(_get(served + "/index.json"))["best"]
    cells = _cells(_get(served + "/"))
    assert len(cells) == len(best) > 0
    for row, cell in zip(best, cells):
        assert cell == _shown(posts[row["id"]])
    rows = json.loads(_get(served + "/leaderboard.json"))["rows"]
    cells = _cells(_get(served + "/leaderboard"))
    assert len(cells) == len(rows)
    for row, cell in zip(rows, cells):
        assert cell == (_shown(posts[row["id"]]) if row["id"] in posts else "—")


def test_architecture_pages_show_their_posterior(served, posts):
    for arch_id, p in posts.items():
        page = html.unescape(re.sub(r"<[^>]+>", "", _get(f"{served}/arch/{arch_id}")))
        assert f"posterior fitness (90% interval, runs combined): {_shown(p)}" in page, arch_id


def test_tree_nodes_and_trend_points_carry_the_posterior(served, posts):
    tree = json.loads(_get(served + "/tree.json"))
    scored = [n for n in tree["nodes"] if n["fitness"] is not None and n["id"] in posts]
    assert scored
    for node in tree["nodes"]:
        p = posts.get(node["id"])
        assert node["posterior"] == (None if p is None else
                                     {"mean": pytest.approx(p.mean), "lo": pytest.approx(p.lo),
                                      "hi": pytest.approx(p.hi), "n": p.n})
    listing = html.unescape(re.sub(r"<[^>]+>", "", _get(served + "/tree")))
    for node in scored:
        assert f"posterior {_shown(posts[node['id']])}" in listing
    points = json.loads(_get(served + "/trends.json"))["points"]
    with_post = [pt for pt in points if pt["posterior"]]
    assert with_post and all(pt["posterior"]["n"] == posts[pt["id"]].n for pt in with_post)
    # the browser draws the hover text and the interval trace from these (static/app.js)
    script = _get(served + "/static/app.js")
    assert "posteriorText" in script and 'name: "posterior (90%)"' in script
