"""`archscout import`: ASI-Arch's published JSON format (a small fixture written here in that format,
not copied) and plain candidate files. Valid entries become architectures with queued experiments and
their published figures a labelled external reference; bad entries are listed with their reason;
bad input as a whole is one line with exit 2; importing twice adds nothing twice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from archscout.analyze.agreement import external_agreement
from archscout.cli import app
from archscout.store.external import externals
from archscout.study import open_study

runner = CliRunner()
FIXTURES = Path(__file__).parents[1] / "compat" / "fixtures"


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _code(tag: str) -> str:
    return (FIXTURES / "fla_ops_gated.py").read_text() + f"\n\nVARIANT = {tag!r}\n"


def _entry(name: str, index: int, parent: int | None, code: str, loss: float, avg: float, score: float) -> dict:
    return {
        "name": name,
        "program": code,
        "motivation": f"why {name}",
        "index": str(index),
        "parent": None if parent is None else str(parent),
        "result": {
            "train": f",1,100,200\n{name},10.5,5.25,{loss}",
            "test": f",arc_easy,boolq,lam_ppl,average\n{name},0.4,0.6,nan,{avg}",
        },
        "score": str(score),
        "parameters": "1.2M",
        "summary": f"{name} in a line",
        "name_new": name.title(),
        "svg_picture": "<svg/>",
    }


def _write_fixture(tmp_path: Path, extra: list | None = None) -> Path:
    entries = [
        _entry("net_a", 10, None, _code("a"), 3.2, 0.40, 1.5),
        _entry("net_b", 11, 10, _code("b"), 3.1, 0.45, 1.4),
        _entry("net_c", 12, 11, _code("c"), 3.4, 0.38, 1.7),
    ] + (extra or [])
    path = tmp_path / "asi.json"
    path.write_text(json.dumps(entries))
    return path


def test_asi_arch_json_is_imported_with_parents_and_labelled_published_results(tmp_path):
    study = tmp_path / "study"
    code, out = _run("import", "asi-arch", str(_write_fixture(tmp_path)), "--study", str(study))
    assert code == 0, out
    assert "imported 3, already in the study 0, rejected 0" in out
    handle = open_study(study)
    try:
        archs = {a.name: a for a in handle.db.architectures_by_origin("import")}
        assert set(archs) == {"net_a", "net_b", "net_c"}
        assert archs["net_b"].parent_id == archs["net_a"].id and archs["net_c"].parent_id == archs["net_b"].id
        assert archs["net_a"].motivation == "why net_a"
        refs = {e.source_id: e for e in externals(handle.db, "asi-arch")}
        ref = refs["11"].data
        assert ref["train_loss_final"] == 3.1 and ref["benchmark_average"] == 0.45 and ref["score"] == 1.4
        assert ref["benchmarks"] == {"arc_easy": 0.4, "boolq": 0.6, "lam_ppl": None}
        assert "ASI-Arch" in refs["11"].label and "not measured by archscout" in refs["11"].label
        # queued, not yet run: `archscout run` resumes them like any open experiment
        assert {e.state for e in handle.db.experiments.open_experiments()} == {"proposed"}
        assert handle.db.run_timeline() == []  # their figures never become runs of ours
    finally:
        handle.close()


def test_importing_twice_adds_nothing_twice(tmp_path):
    study = tmp_path / "study"
    path = _write_fixture(tmp_path)
    _run("import", "asi-arch", str(path), "--study", str(study))
    code, out = _run("import", "asi-arch", str(path), "--study", str(study))
    assert code == 0 and "imported 0, already in the study 3" in out
    db = sqlite3.connect(study / "study.db")
    assert db.execute("select count(*) from architectures where origin = 'import'").fetchone() == (3,)
    assert db.execute("select count(*) from experiments").fetchone() == (3,)
    assert db.execute("select count(*) from external_results").fetchone() == (3,)


def test_bad_entries_are_listed_with_their_reason_and_the_valid_ones_imported(tmp_path):
    extra = [
        {"name": "no_code", "program": "", "motivation": "m", "index": "20"},
        {"program": _code("nameless")},
        _entry("net_a", 21, None, _code("a-again"), 3.0, 0.5, 1.0),
        {"name": "broken", "program": "def f(:\n", "index": "22"},
        {"name": "twin", "program": _code("a"), "index": "23"},
        "not an object",
    ]
    code, out = _run("import", "asi-arch", str(_write_fixture(tmp_path, extra)), "--study", str(tmp_path / "s"))
    assert code == 0, out
    assert "imported 3" in out and "rejected 6" in out
    for fragment in ("no code", "no name", "duplicate name", "syntax error at line 1", "same code as architecture",
                     "not an object"):
        assert fragment in out, fragment


def test_input_that_is_not_asi_arch_format_is_one_line_and_writes_nothing(tmp_path):
    cases = {
        "missing.json": None,
        "tree.json": json.dumps({"total_records": 2, "results": [{"index": 1, "name": "delta_net", "parent": None}]}),
        "other.json": json.dumps({"hello": "world"}),
        "notjson.json": "{not json",
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        code, out = _run("import", "asi-arch", str(path), "--study", str(tmp_path / "s"))
        assert code == 2, (name, out)
        assert len(out.strip().splitlines()) == 1, (name, out)
        assert not (tmp_path / "s").exists()
    assert "no code" in _run("import", "asi-arch", str(tmp_path / "tree.json"), "--study", str(tmp_path / "s"))[1]


def test_candidate_files_and_folders_are_imported_and_missing_ones_listed(tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    (folder / "one.py").write_text(_code("one"))
    (folder / "two.py").write_text(_code("two"))
    (tmp_path / "notes.txt").write_text("hello")
    study = tmp_path / "study"
    code, out = _run("import", str(folder), str(tmp_path / "notes.txt"), str(tmp_path / "gone.py"), "--study", str(study))
    assert code == 0, out
    assert "imported 2" in out and "not a .py file" in out and "no such file" in out
    code, out = _run("import", str(folder), "--study", str(study))
    assert "imported 0, already in the study 2" in out
    code, out = _run("import", str(tmp_path / "gone.py"), "--study", str(tmp_path / "s2"))
    assert code == 2 and len(out.strip().splitlines()) == 1


def test_agreement_is_empty_without_runs_and_report_shows_nothing_to_compare(tmp_path):
    study = tmp_path / "study"
    _run("import", "asi-arch", str(_write_fixture(tmp_path)), "--study", str(study))
    handle = open_study(study)
    try:
        assert external_agreement(handle.db) == []  # no measured runs yet: no preset to compare on
    finally:
        handle.close()


def test_report_ranks_our_measured_runs_against_their_published_results(tmp_path):
    from archscout.records import RunResult

    study = tmp_path / "study"
    extra = [_entry(f"net_{i}", 30 + i, None, _code(f"n{i}"), 3.0 + 0.1 * i, 0.5 - 0.01 * i, 1.0 + i)
             for i in range(4)]
    _run("import", "asi-arch", str(_write_fixture(tmp_path, extra)), "--study", str(study))
    handle = open_study(study)
    try:
        refs = externals(handle.db, "asi-arch")
        for ext in refs:  # our val loss ranks exactly as their final training loss
            val = 5.0 + ext.data["train_loss_final"]
            result = RunResult(candidate_hash="h", preset="smoke", seed=0, status="ok", val_loss=val)
            handle.db.add_run(ext.architecture_id, "explore", result)
        rows = {r["theirs"]: r for r in external_agreement(handle.db)}
    finally:
        handle.close()
    assert rows["train_loss_final"]["preset"] == "smoke" and rows["train_loss_final"]["n"] == 7
    assert rows["train_loss_final"]["rho"] == 1.0
    assert rows["train_loss_final"]["ci_low"] is not None
    assert rows["benchmark_average"]["rho"] < 1.0
    code, out = _run("report", "--study", str(study))
    assert code == 0, out
    assert "Spearman ρ 1.00" in out and "external_agreement" in out


def test_their_tree_adds_each_architectures_ancestry(tmp_path):
    tree = {"total_records": 4, "results": [
        {"index": 5, "name": "delta_net", "parent": None, "score": 1.0},
        {"index": 10, "name": "net_a", "parent": 5, "score": 1.5},
        {"index": 11, "name": "net_b", "parent": 10, "score": 1.4},
        {"index": 12, "name": "net_c", "parent": 11, "score": 1.7},
    ]}
    (tmp_path / "tree.json").write_text(json.dumps(tree))
    study = tmp_path / "study"
    code, out = _run("import", "asi-arch", str(_write_fixture(tmp_path)), "--tree", str(tmp_path / "tree.json"),
                     "--study", str(study))
    assert code == 0 and "ancestry from the tree stored for 3" in out, out
    handle = open_study(study)
    try:
        data = {e.source_id: e.data for e in externals(handle.db, "asi-arch")}
    finally:
        handle.close()
    assert [a["index"] for a in data["12"]["tree_ancestors"]] == ["11", "10", "5"]
    assert data["12"]["tree_score"] == 1.7
    code, out = _run("import", "asi-arch", str(_write_fixture(tmp_path)), "--tree", str(tmp_path / "asi.json"),
                     "--study", str(study))
    assert code == 2 and "tree format" in out
