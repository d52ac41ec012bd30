"""The dashboard in a real browser: headless Chromium (Debian's `chromium`, never a downloaded one)
driven by Playwright, against `archscout serve` on a real smoke-run study.

It opens the overview, the lineage tree, the trends and leaderboard pages, clicks a node of the tree
to reach that architecture's page, and fails on any console error (a CSP violation is one), any
uncaught page error and any HTTP status >= 500. Screenshots go to artifacts/screenshots/.
`ARCHSCOUT_SCREENSHOT_STUDY=DIR` points it at another study (the README's screenshots).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture()
def served(request, serve_study):
    other = os.environ.get("ARCHSCOUT_SCREENSHOT_STUDY")
    study = Path(other) if other else request.getfixturevalue("smoke_study")
    with serve_study(study) as url:
        yield url


def test_pages_work_in_chromium_and_tree_nodes_open_architectures(served):
    sync_api = pytest.importorskip("playwright.sync_api", reason="install the test extra: pip install -e '.[test]'")
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox cannot start
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 500 else None)

        page.goto(served + "/")
        page.wait_for_selector("#best")
        # the overview polls its .json twin; the status line changes once a poll came back
        page.locator("#live-status", has_text="updated").wait_for(timeout=15000)
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        page.goto(served + "/leaderboard")
        page.click("#leaderboard th:nth-child(2)")  # sort by id, descending on the first click
        ids = page.locator("#leaderboard tbody tr td:nth-child(2)").all_inner_texts()
        assert ids == sorted(ids, key=int, reverse=True)
        # every scored row shows its posterior: mean [90% interval] (runs combined)
        cells = page.locator("#leaderboard td.posterior").all_inner_texts()
        assert cells and all(re.fullmatch(r"-?\d\.\d{4} \[-?\d\.\d{4}, -?\d\.\d{4}\] \(\d+ runs?\)", c) for c in cells), cells
        page.screenshot(path=str(SHOTS / "leaderboard.png"), full_page=True)

        page.goto(served + "/trends")
        page.locator("[data-chart='scaling'] .scatterlayer").wait_for(state="attached")
        # the fitness chart draws each point's posterior with its interval (error bars) beside the run
        fitness_chart = page.locator("[data-metric='fitness']")
        fitness_chart.locator(".scatterlayer .trace").first.wait_for(state="attached")
        with_posterior = page.evaluate(
            "JSON.parse(document.getElementById('page-data').textContent).points.filter(p => p.posterior).length")
        assert fitness_chart.locator(".errorbar").count() >= min(with_posterior, 1)
        page.screenshot(path=str(SHOTS / "trends.png"), full_page=True)

        page.goto(served + "/tree")
        points = page.locator("#tree-chart .scatterlayer path.point")
        points.first.wait_for()
        assert points.count() >= 2
        page.screenshot(path=str(SHOTS / "tree.png"))
        # the last scored node: a child of the baseline (points of the 'scored' trace follow the root's)
        box = points.last.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        # the hover label gives the node's posterior over all its runs
        page.locator("#tree-chart .hoverlayer", has_text="posterior").wait_for(timeout=10000)
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_url("**/arch/*", timeout=10000)
        page.locator("#curves .scatterlayer").first.wait_for(state="attached")
        assert page.locator("h2", has_text="Code").count() == 1
        page.screenshot(path=str(SHOTS / "architecture.png"), full_page=True)
        browser.close()
    assert not problems, "\n".join(problems)


def test_the_static_export_works_from_disk_under_its_csp_meta_tag(synthetic_study, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="install the test extra: pip install -e '.[test]'")
    from archscout.web.export import write_site
    from archscout.web.study import open_readonly

    study = open_readonly(synthetic_study)
    try:
        write_site(study, tmp_path / "site")
    finally:
        study.close()
    assert "Content-Security-Policy" in (tmp_path / "site" / "index.html").read_text()
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto((tmp_path / "site" / "tree.html").as_uri())
        page.locator("#tree-chart .scatterlayer path.point").first.wait_for(timeout=15000)
        page.goto((tmp_path / "site" / "trends.html").as_uri())
        page.locator("[data-chart='scaling'] .scatterlayer").wait_for(state="attached", timeout=15000)
        browser.close()
    assert not problems, "\n".join(problems)
