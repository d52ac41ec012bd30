"""`archscout cognition search` and `show` through the real Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from archscout.cli import app

runner = CliRunner()


def test_search_prints_a_table_with_rank_id_and_trigger():
    result = runner.invoke(app, ["cognition", "search", "state tracking fails on parity", "-k", "3"])
    assert result.exit_code == 0, result.output
    ids = {"negative-eigenvalues-state-tracking", "rwkv7-generalized-delta", "deltaproduct-householder-products"}
    assert any(i in result.output for i in ids) and "backend:" in result.output and "rank" in result.output


def test_search_json_lists_k_hits_best_first():
    result = runner.invoke(app, ["cognition", "search", "recall collapses as pairs grow", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [h["rank"] for h in data["hits"]] == [1, 2, 3]
    assert {"id", "title", "score", "trigger", "bm25_rank", "dense_rank"} <= set(data["hits"][0])


def test_search_reads_extra_dirs(tmp_path):
    entry = {"id": "mine", "title": "Mine", "trigger": "zebra quokka symptom", "background": "b", "algorithm": "a",
             "implementation": "i", "source": "Me, 2025.", "tags": ["user"]}
    (tmp_path / "mine.json").write_text(json.dumps(entry))
    result = runner.invoke(app, ["cognition", "search", "zebra quokka", "-k", "1", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hits"][0]["id"] == "mine"


def test_show_prints_every_field():
    result = runner.invoke(app, ["cognition", "show", "gated-deltanet"])
    assert result.exit_code == 0, result.output
    for word in ("source", "trigger", "background", "algorithm", "implementation", "Hatamizadeh"):
        assert word in result.output


def test_errors_are_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["cognition", "show", "no-such-entry"])
    assert result.exit_code == 2 and "no-such-entry" in result.output
    (tmp_path / "bad.json").write_text("[1]")
    result = runner.invoke(app, ["cognition", "search", "x", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "bad.json" in result.output
    result = runner.invoke(app, ["cognition", "search", " "])
    assert result.exit_code == 2 and "empty" in result.output
