"""Bad input at the command line: one clear line naming the problem, a non-zero exit, nothing lost."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from archscout.cli import app
from archscout.store.migrations import LATEST_VERSION
from archscout.study import open_study

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "toml, fragment",
    [
        ('budget = "many"\n', "field 'budget'"),
        ("budgett = 3\n", "field 'budgett'"),
        ("[pool]\nparent_ranks = [10, 1]\n", "pool"),
        ("budget = \n", "not valid TOML"),
        ('preset = "huge"\n', "unknown preset 'huge'"),
    ],
)
def test_malformed_study_config_is_one_line_naming_the_field(tmp_path, toml, fragment):
    (tmp_path / "study.toml").write_text(toml)
    code, out = _run("run", "--study", str(tmp_path))
    assert code == 2
    assert fragment in out
    assert len(out.strip().splitlines()) == 1
    # the user's file is left as it was
    assert (tmp_path / "study.toml").read_text() == toml


def test_bad_set_override_is_rejected(tmp_path):
    code, out = _run("run", "--study", str(tmp_path), "--set", "budget")
    assert code == 2 and "KEY=VALUE" in out


def test_status_of_a_missing_study_says_how_to_start_one(tmp_path):
    code, out = _run("status", "--study", str(tmp_path / "nothing"))
    assert code == 2 and "no study in" in out and "archscout run" in out


def test_a_study_from_a_newer_schema_is_refused(tmp_path):
    open_study(tmp_path, {"preset": "smoke"}).close()
    with sqlite3.connect(tmp_path / "study.db") as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', '2030-01-01')",
            (LATEST_VERSION + 1,),
        )
    code, out = _run("status", "--study", str(tmp_path))
    assert code == 2 and "newer archscout" in out


def test_eval_needs_exactly_one_candidate(tmp_path):
    code, out = _run("eval")
    assert code == 2 and "FILE or --baseline" in out
    code, out = _run("eval", "--baseline", "nonesuch")
    assert code == 2 and "unknown baseline 'nonesuch'" in out
    code, out = _run("eval", str(tmp_path / "missing.py"))
    assert code == 2 and "no such file" in out
    code, out = _run("eval", "--baseline", "deltanet", "--preset", "huge")
    assert code == 2 and "unknown preset 'huge'" in out


def test_show_of_an_unknown_architecture(tmp_path):
    open_study(tmp_path, {"preset": "smoke"}).close()
    code, out = _run("show", "999", "--study", str(tmp_path))
    assert code == 2 and "no architecture #999" in out
