"""The calibration panel: which reference mixers to run and which published orderings to compare with.

A panel file (TOML, default `archscout/space/panel/panel.toml`) lists `[[member]]` tables (name,
candidate file, citation, optional `floor = true`) and `[[ordering]]` tables (a published table's
numbers for some members, the metric they correspond to, and the source). Loading validates
everything a calibration relies on and raises `PanelError` with one line naming the problem. It
does not run anything; a member's probes are run by the calibration itself.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SPACE_DIR = Path(__file__).resolve().parent.parent / "space"
DEFAULT_PANEL = SPACE_DIR / "panel" / "panel.toml"


class PanelError(ValueError):
    """A panel file or a member selection that cannot be used; the message is one line."""


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    file: str  # relative to the panel file's folder; "baselines/..." resolves under space/
    citation: str
    floor: bool = False  # a control the instrument must rank last
    path: Path | None = None  # resolved by load_panel


class Ordering(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    source: str  # paper, table and setting the numbers come from
    metric: str  # calibration metric compared with: "val_loss", "benchmark", "fitness", ...
    higher_is_better: bool  # of the published numbers
    values: dict[str, float] = Field(min_length=3)


class Panel(BaseModel):
    path: Path
    members: list[Member]
    orderings: list[Ordering] = Field(default_factory=list)

    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)


def _resolve(file: str, folder: Path) -> Path:
    if file.startswith("baselines/"):
        return SPACE_DIR / file
    return (folder / file).resolve()


def load_panel(path: Path | None = None) -> Panel:
    path = Path(path) if path else DEFAULT_PANEL
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PanelError(f"panel file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise PanelError(f"{path}: not valid TOML: {err}") from None
    members = []
    for i, raw in enumerate(data.get("member", [])):
        label = raw.get("name", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
        if isinstance(raw, dict) and not str(raw.get("citation", "")).strip():
            raise PanelError(f"{path}: member '{label}' has no citation")
        try:
            member = Member(**raw)
        except (ValidationError, TypeError) as err:
            detail = err.errors()[0] if isinstance(err, ValidationError) else {"loc": (), "msg": str(err)}
            raise PanelError(f"{path}: member '{label}': {'.'.join(map(str, detail['loc']))} {detail['msg']}") from None
        member.path = _resolve(member.file, path.parent)
        if not member.path.is_file():
            raise PanelError(f"{path}: member '{member.name}': no such file {member.file}")
        members.append(member)
    if not members:
        raise PanelError(f"{path}: no [[member]] tables")
    names = [m.name for m in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PanelError(f"{path}: duplicate member names: {', '.join(dup)}")
    orderings = []
    for raw in data.get("ordering", []):
        try:
            ordering = Ordering(**raw)
        except (ValidationError, TypeError) as err:
            msg = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
            raise PanelError(f"{path}: ordering '{raw.get('name', '?')}': {msg}") from None
        unknown = sorted(set(ordering.values) - set(names))
        if unknown:
            raise PanelError(f"{path}: ordering '{ordering.name}' names unknown members: {', '.join(unknown)}")
        orderings.append(ordering)
    return Panel(path=path, members=members, orderings=orderings)


def select(panel: Panel, names: list[str] | None) -> Panel:
    """The panel restricted to `names` (in the panel's order); unknown names raise PanelError."""
    if not names:
        return panel
    unknown = [n for n in names if n not in panel.names()]
    if unknown:
        raise PanelError(f"unknown panel member '{unknown[0]}' (known: {', '.join(panel.names())})")
    return panel.model_copy(update={"members": [m for m in panel.members if m.name in names]})
