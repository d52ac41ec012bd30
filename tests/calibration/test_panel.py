"""The calibration panel: its file validates, bad panels are named in one line, every member
(the floors included) passes the probes."""

from __future__ import annotations

import pytest

from archscout.calibration.panel import PanelError, load_panel, select
from archscout.check.probes import first_fatal, run_probes
from archscout.config import get_preset
from archscout.space.contract import load_mixer_class

PANEL = load_panel()


def test_builtin_panel_has_ten_members_two_floors_and_cited_orderings():
    assert len(PANEL.members) >= 10
    assert {m.name for m in PANEL.members if m.floor} == {"floor_no_mixing", "floor_running_mean"}
    assert all(m.citation.strip() for m in PANEL.members)
    assert PANEL.orderings and all(o.source and len(o.values) >= 3 for o in PANEL.orderings)


@pytest.mark.parametrize("name", [m.name for m in PANEL.members])
def test_panel_member_passes_the_probes(name):
    spec = get_preset("smoke").probes
    reports = run_probes(load_mixer_class(PANEL.member(name).path), spec, chunk_size=16)
    assert first_fatal(reports) is None, [r for r in reports if not r.passed]
    # the deterministic cost that fitness scores is counted for every member
    complexity = next(r for r in reports if r.name == "complexity")
    assert complexity.details["flops_per_token"] > 0


def _write(tmp_path, text: str):
    path = tmp_path / "panel.toml"
    (tmp_path / "mixer.py").write_text("# a member file\n")
    path.write_text(text)
    return path


def test_member_without_citation_is_rejected_by_name(tmp_path):
    path = _write(tmp_path, '[[member]]\nname = "x"\nfile = "mixer.py"\ncitation = " "\n')
    with pytest.raises(PanelError, match="member 'x' has no citation"):
        load_panel(path)
    path = _write(tmp_path, '[[member]]\nname = "y"\nfile = "mixer.py"\n')
    with pytest.raises(PanelError, match="member 'y' has no citation"):
        load_panel(path)


def test_missing_member_file_and_unknown_ordering_member_are_rejected(tmp_path):
    with pytest.raises(PanelError, match="no such file nope.py"):
        load_panel(_write(tmp_path, '[[member]]\nname = "x"\nfile = "nope.py"\ncitation = "c"\n'))
    text = (
        '[[member]]\nname = "x"\nfile = "mixer.py"\ncitation = "c"\n'
        '[[ordering]]\nname = "o"\nsource = "s"\nmetric = "val_loss"\nhigher_is_better = false\n'
        "values = { x = 1.0, ghost = 2.0, other = 3.0 }\n"
    )
    with pytest.raises(PanelError, match="unknown members: ghost, other"):
        load_panel(_write(tmp_path, text))


def test_selecting_an_unknown_member_names_it():
    with pytest.raises(PanelError, match="unknown panel member 'mamba3'"):
        select(PANEL, ["deltanet", "mamba3"])
    assert select(PANEL, ["gla", "deltanet"]).names() == ["deltanet", "gla"]
