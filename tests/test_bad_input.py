"""Bad input tried by hand, one test per case: each command ends in exactly one line on stderr,
exit 2, with nothing printed to stdout and the study (every file in its folder, byte for byte)
unchanged. Runs the installed `archscout` command in a child process, as a user would."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from archscout.store.engine import make_engine
from archscout.store.migrations import LATEST_VERSION, upgrade
from archscout.study import open_study

ARCHSCOUT = str(Path(sys.executable).with_name("archscout"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_line_exit_2(cwd: Path, *args: str | bytes, expect: str) -> str:
    """Also asserts that nothing under `cwd` changed: no file added, none modified."""
    before = snapshot(cwd)
    done = subprocess.run([ARCHSCOUT, *args], cwd=cwd, capture_output=True, timeout=120,
                          env={**os.environ, "COLUMNS": "400"})
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, err
    assert done.stdout == b""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and expect in err, err
    assert snapshot(cwd) == before
    return err


@pytest.fixture
def study(tmp_path: Path) -> Path:
    open_study(tmp_path / "study", {"preset": "smoke"}).close()
    return tmp_path / "study"


def test_eval_of_a_binary_file(tmp_path):
    (tmp_path / "x.py").write_bytes(b"\x7fELF\x00\x01\x02")
    one_line_exit_2(tmp_path, "eval", "x.py", expect="binary file")


def test_eval_of_a_latin_1_file(tmp_path):
    (tmp_path / "x.py").write_bytes("label = 'café'\n".encode("latin-1"))
    one_line_exit_2(tmp_path, "eval", "x.py", expect="not UTF-8")


def test_add_of_a_binary_file(tmp_path, study):
    (tmp_path / "x.py").write_bytes(b"\x00" * 64)
    before = snapshot(study)
    one_line_exit_2(tmp_path, "add", "x.py", "--study", "study", expect="binary file")
    assert snapshot(study) == before


def test_add_of_a_latin_1_file(tmp_path, study):
    (tmp_path / "x.py").write_bytes("label = 'café'\n".encode("latin-1"))
    before = snapshot(study)
    one_line_exit_2(tmp_path, "add", "x.py", "--study", "study", expect="not UTF-8")
    assert snapshot(study) == before


def test_add_of_a_file_whose_name_is_not_utf_8(tmp_path, study):
    name = b"mixer-\xe9.py"
    (tmp_path / os.fsdecode(name)).write_text("x = 1\n")
    before = snapshot(study)
    one_line_exit_2(tmp_path, "add", name, "--study", "study", expect="not valid UTF-8")
    assert snapshot(study) == before


def test_status_on_a_truncated_study_db(tmp_path, study):
    (study / "study.db").write_bytes((study / "study.db").read_bytes()[:3000])
    before = snapshot(tmp_path)
    one_line_exit_2(tmp_path, "status", "--study", "study", expect="study.db")
    assert snapshot(tmp_path) == before


def test_status_on_a_random_bytes_study_db(tmp_path, study):
    (study / "study.db").write_bytes(os.urandom(8192))
    before = snapshot(tmp_path)
    one_line_exit_2(tmp_path, "status", "--study", "study", expect="not a readable SQLite database")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [["status"], ["show", "1"], ["report"], ["serve"]])
def test_read_commands_on_a_foreign_sqlite_file_say_not_an_archscout_study(tmp_path, command):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "study.toml").write_text("")
    with closing(sqlite3.connect(folder / "study.db")) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
    before = snapshot(tmp_path)
    one_line_exit_2(tmp_path, *command, "--study", "other", expect="not an archscout study")
    assert snapshot(tmp_path) == before


@pytest.fixture
def older_study(tmp_path: Path) -> Path:
    """A study database one schema version behind this archscout."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "study.toml").write_text('preset = "smoke"\n')
    engine = make_engine(folder)
    upgrade(engine, target=LATEST_VERSION - 1)
    engine.dispose()
    return folder


@pytest.mark.parametrize("command", [["status"], ["show", "1"], ["report"], ["serve"]])
def test_read_commands_never_migrate_an_older_study(tmp_path, older_study, command):
    one_line_exit_2(tmp_path, *command, "--study", "old", expect="archscout upgrade")


def test_read_commands_never_create_a_database(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "study.toml").write_text("")
    one_line_exit_2(tmp_path, "status", "--study", "half", expect="no study in")


def test_run_with_study_pointing_at_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    one_line_exit_2(tmp_path, "run", "--study", "notes.txt", expect="is a file, not a study folder")


def test_a_baseline_path_that_does_not_exist(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.toml").write_text('baseline = "my_mixer.py"\n')
    one_line_exit_2(tmp_path, "run", "--study", "s", expect="baseline 'my_mixer.py'")


def test_show_of_an_id_beyond_sqlite_integers(tmp_path, study):
    before = snapshot(study)
    one_line_exit_2(tmp_path, "show", "99999999999999999999", "--study", "study",
                    expect="no architecture #99999999999999999999")
    assert snapshot(study) == before


def test_serve_on_port_70000(tmp_path, study):
    before = snapshot(study)
    one_line_exit_2(tmp_path, "serve", "--study", "study", "--port", "70000", expect="--port 70000")
    assert snapshot(study) == before


@pytest.mark.parametrize("token", ["", "short"])
def test_serve_remote_with_an_empty_or_short_token(tmp_path, study, token):
    one_line_exit_2(tmp_path, "serve", "--study", "study", "--host", "0.0.0.0", "--allow-remote",
                    "--token", token, expect="--token must be at least")


def test_upgrade_brings_an_older_study_to_this_schema(tmp_path, older_study):
    done = subprocess.run([ARCHSCOUT, "upgrade", "--study", "old"], cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(older_study / "study.db")) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
