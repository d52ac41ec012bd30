"""The isolation level as the user meets it: `status` shows it, and `run --proposer llm` refuses
to run model-written code without namespaces unless the study allows the fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from archscout.isolation import start_line
from archscout.study import open_study

ARCHSCOUT = str(Path(sys.executable).with_name("archscout"))


def archscout(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARCHSCOUT, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "400", **env})


def test_llm_proposals_refuse_the_fallback_in_one_line_and_write_nothing(tmp_path):
    done = archscout(tmp_path, "run", "--study", "s", "--proposer", "llm",
                     ARCHSCOUT_SANDBOX="fallback")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "refusing to run model-written code" in done.stderr
    assert "sandbox.allow_fallback = true" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_allow_fallback_lets_an_llm_study_past_the_isolation_check(tmp_path):
    done = archscout(tmp_path, "run", "--study", "s", "--proposer", "llm", "--set",
                     "sandbox.allow_fallback=true", "--set", "llm.api_key_env=ARCHSCOUT_NO_SUCH_KEY",
                     ARCHSCOUT_SANDBOX="fallback")
    # it now stops at the next check, the missing key, not at the sandbox
    assert done.returncode == 2
    assert "refusing" not in done.stderr and "ARCHSCOUT_NO_SUCH_KEY" in done.stderr


def test_status_shows_the_isolation_level(tmp_path):
    open_study(tmp_path / "s", {"preset": "smoke"}).close()
    data = json.loads(archscout(tmp_path, "status", "--study", "s", "--json").stdout)
    assert data["isolation"]["level"] in ("netns", "fallback-uid", "fallback")
    assert data["isolation"]["runs"] == {}
    forced = archscout(tmp_path, "status", "--study", "s", ARCHSCOUT_SANDBOX="fallback")
    assert "isolation" in forced.stdout and "fallback" in forced.stdout


def test_the_start_line_says_how_to_get_full_isolation_in_the_fallback(monkeypatch):
    monkeypatch.setenv("ARCHSCOUT_SANDBOX", "fallback")
    line = start_line()
    assert line.startswith("isolation: fallback") and "apt install bubblewrap" in line
