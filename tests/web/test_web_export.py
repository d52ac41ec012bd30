"""`archscout report --site DIR`: static pages that open from disk, with relative links only."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from archscout.cli import app

XSS = "<script>alert(1)</script>"  # as in conftest.py


def test_report_site_writes_every_page_with_relative_links(synthetic_study, tmp_path):
    site = tmp_path / "site"
    result = CliRunner().invoke(app, ["report", "--study", str(synthetic_study), "--site", str(site)])
    assert result.exit_code == 0, result.output
    for name in ("index", "leaderboard", "tree", "trends", "failures", "calibration"):
        assert (site / f"{name}.html").is_file() and (site / f"{name}.json").is_file()
    arch_pages = sorted(site.glob("arch/*.html"))
    assert len(arch_pages) == len(json.loads((site / "tree.json").read_text())["nodes"])
    assert (site / "static" / "plotly.min.js").stat().st_size > 1_000_000
    for page in [*site.glob("*.html"), *arch_pages]:
        html = page.read_text()
        assert "http://" not in html and "https://" not in html, page
        assert XSS not in html, page
        for link in re.findall(r'(?:href|src)="([^"]+)"', html):
            assert not link.startswith("/"), (page, link)
            target = link.split("#")[0]
            if target and not target.startswith("data:"):  # the empty favicon
                assert (page.parent / target).resolve().is_file(), (page, link)
        block = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
        json.loads(block.group(1))


def test_exported_tree_links_nodes_to_relative_architecture_files(synthetic_study, tmp_path):
    from archscout.web.export import write_site
    from archscout.web.study import open_readonly

    study = open_readonly(synthetic_study)
    try:
        write_site(study, tmp_path)
    finally:
        study.close()
    html = (tmp_path / "tree.html").read_text()
    charts = json.loads(re.search(r'id="page-data">(.*?)</script>', html, re.S).group(1))
    assert charts["arch_url"] == "arch/{id}.html"
    arch = (tmp_path / "arch" / "2.html").read_text()
    assert 'href="../static/app.js"' not in arch and 'src="../static/app.js"' in arch
    assert 'data-live="off"' in arch and Path(tmp_path / "arch" / "2.json").is_file()
