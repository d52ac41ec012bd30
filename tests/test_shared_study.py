"""A study kept in a shared PostgreSQL database (`archscout run --db URL`): a second folder (another
machine) joins it with the study's own settings, the read commands and the dashboard read it
without writing, and `--db` never moves an existing study. Runs against the server that
ARCHSCOUT_TEST_PG_URL names (`.ci/run` starts one), skipped without it."""

from __future__ import annotations

import json
import tomllib

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from archscout.cli import app
from archscout.web.study import open_readonly

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _rows(url: str, table: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return n


def _tables(url: str) -> int:
    """How many tables the test's own schema holds."""
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")).scalar_one()
    engine.dispose()
    return n


@pytest.mark.slow
def test_two_folders_share_one_study_in_postgresql(tmp_path, pg_url):
    first, second = tmp_path / "laptop", tmp_path / "cluster"
    code, out = _run("run", "--study", str(first), "--db", pg_url, "--preset", "smoke", "--budget", "1",
                     "--set", "baseline_seeds=2")
    assert code == 0, out
    assert not (first / "study.db").exists()  # the experiments live in the shared database
    assert tomllib.loads((first / "study.toml").read_text())["db_url"] == pg_url
    assert _rows(pg_url, "experiments") == 1

    # another folder (another machine) joins with the study's settings, not the defaults
    code, out = _run("run", "--study", str(second), "--db", pg_url, "--budget", "2")
    assert code == 0, out
    joined = tomllib.loads((second / "study.toml").read_text())
    assert joined["preset"] == "smoke" and joined["baseline_seeds"] == 2
    assert _rows(pg_url, "experiments") == 2
    assert _rows(pg_url, "studies") == 1

    code, out = _run("status", "--study", str(first), "--json")
    assert code == 0, out
    assert json.loads(out)["experiments"]["done"] == 2


def test_read_commands_and_dashboard_never_write_to_the_shared_database(tmp_path, pg_url):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "study.toml").write_text(f'preset = "smoke"\ndb_url = "{pg_url}"\n')
    # nothing there yet: one line, and no archscout tables created by the attempt
    code, out = _run("status", "--study", str(folder))
    assert code == 2 and "holds no archscout study" in out and len(out.strip().splitlines()) == 1
    assert _tables(pg_url) == 0


def test_the_dashboard_reads_a_shared_study_through_read_only_sessions(tmp_path, pg_url):
    folder = tmp_path / "s"
    code, out = _run("run", "--study", str(folder), "--db", pg_url, "--preset", "smoke", "--budget", "0",
                     "--set", "baseline_seeds=1")
    assert code == 0, out
    handle = open_readonly(folder)
    try:
        with handle.db.engine.connect() as conn, pytest.raises(Exception, match="read-only transaction"):
            conn.execute(text("DELETE FROM experiments"))
        assert handle.db.study() is not None  # and it reads
    finally:
        handle.close()


def test_db_cannot_move_an_existing_study(tmp_path, pg_url):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "study.toml").write_text('preset = "smoke"\n')
    before = (folder / "study.toml").read_text()
    code, out = _run("run", "--study", str(folder), "--db", pg_url, "--budget", "0")
    assert code == 2 and "--db cannot move it" in out and len(out.strip().splitlines()) == 1
    assert (folder / "study.toml").read_text() == before
    assert _tables(pg_url) == 0


def test_a_db_that_is_not_a_url_is_one_line(tmp_path):
    code, out = _run("run", "--study", str(tmp_path / "s"), "--db", "my-server:5432", "--budget", "0")
    assert code == 2 and "field 'db_url'" in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "study.toml").exists()
