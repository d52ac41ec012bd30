"""`archscout calibrate` bad input (issue 11): an unknown panel member, a panel file with a missing
citation, a member that fails its probes, an unknown preset, K < 2 (and a too small --bootstrap, a
preset named twice) each give one line naming the problem and exit 2, and evaluations finished
earlier stay in the calibration store, untouched."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archscout.calibration.store import CalibrationStore
from archscout.cli import app
from archscout.records import RunResult

runner = CliRunner()
PANEL_DIR = Path(__file__).resolve().parents[2] / "archscout" / "space" / "panel"

LEAKY = '''
import torch
from torch import nn


class Leaky(nn.Module):
    """Cited nowhere on purpose: every position sees the mean of the whole sequence, future included."""

    def __init__(self, d_model=None, hidden_size=None, num_heads=2, layer_idx=None, **kwargs):
        super().__init__()
        d = d_model or hidden_size
        self.proj = nn.Linear(d, d)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        mean = hidden_states.mean(1, keepdim=True).expand_as(hidden_states)
        return self.proj(hidden_states + mean), None, past_key_values
'''


def _rows(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT member, preset, seed, status, finished_at, result FROM runs").fetchall()
    return {(m, p, s): (st, f, r) for m, p, s, st, f, r in rows}


@pytest.fixture()
def previous(tmp_path) -> Path:
    """A calibration folder holding one finished evaluation from an earlier run."""
    folder = tmp_path / "cal"
    store = CalibrationStore(folder)
    store.add("deltanet", RunResult(candidate_hash="abc", preset="smoke", seed=0, status="ok", val_loss=5.4,
                                    benchmark=0.9, wall_s={"total": 12.0}))
    store.close()
    return folder


def _no_citation_panel(tmp_path: Path) -> list[str]:
    (tmp_path / "m.py").write_text("# member\n")
    panel = tmp_path / "panel.toml"
    panel.write_text('[[member]]\nname = "m"\nfile = "m.py"\n')
    return ["--panel", str(panel)]


CASES = {
    "k_below_2": (lambda tmp: ["--seeds", "1"], "--seeds must be at least 2"),
    "k_zero": (lambda tmp: ["--seeds", "0"], "--seeds must be at least 2"),
    "unknown_preset": (lambda tmp: ["--preset", "smoke,huge"], "unknown preset 'huge'"),
    "unknown_member": (lambda tmp: ["--members", "deltanet,mamba7"], "unknown panel member 'mamba7'"),
    "missing_citation": (_no_citation_panel, "member 'm' has no citation"),
    "panel_not_found": (lambda tmp: ["--panel", str(tmp / "nope.toml")], "panel file not found"),
    "bootstrap_too_small": (lambda tmp: ["--bootstrap", "3"], "--bootstrap must be at least"),
    "preset_twice": (lambda tmp: ["--preset", "smoke,smoke"], "--preset names 'smoke' twice"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_keeps_finished_evaluations(tmp_path, previous, case):
    make_args, fragment = CASES[case]
    before = _rows(previous / "calibration.db")
    result = runner.invoke(app, ["calibrate", "--preset", "smoke", "--dir", str(previous), *make_args(tmp_path)])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert _rows(previous / "calibration.db") == before
    assert not (previous / "report").exists()


@pytest.mark.slow
def test_a_member_failing_its_probes_stops_with_one_line_and_keeps_finished_evaluations(tmp_path):
    shutil.copyfile(PANEL_DIR / "floor_no_mixing.py", tmp_path / "floor.py")
    (tmp_path / "leaky.py").write_text(textwrap.dedent(LEAKY))
    panel = tmp_path / "panel.toml"
    panel.write_text(textwrap.dedent('''
        [[member]]
        name = "floor"
        file = "floor.py"
        citation = "a no-mixing control (Zoology, arXiv 2312.04927)"
        floor = true

        [[member]]
        name = "leaky"
        file = "leaky.py"
        citation = "a deliberately non-causal mixer for this test"
    '''))
    folder = tmp_path / "cal"
    args = ["calibrate", "--preset", "smoke", "--seeds", "2", "--panel", str(panel), "--dir", str(folder), "--bootstrap", "50"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1 and "panel member 'leaky' fails its probes (causality" in lines[0], result.output
    assert "finished evaluations are kept" in lines[0]
    rows = _rows(folder / "calibration.db")
    # the floor's first seed ran before the leaky member and is kept; the failed probe row is the record
    assert rows[("floor", "smoke", 0)][0] == "ok"
    assert rows[("leaky", "smoke", 0)][0] == "failed"
    assert ("floor", "smoke", 1) not in rows  # the calibration stopped at the first failing member
    kept = rows[("floor", "smoke", 0)]

    # without the bad member the calibration resumes: the finished evaluation is not run again
    again = runner.invoke(app, [*args, "--members", "floor", "--json"])
    assert again.exit_code == 0, again.output
    rows = _rows(folder / "calibration.db")
    assert rows[("floor", "smoke", 0)] == kept
    assert rows[("floor", "smoke", 1)][0] == "ok"
