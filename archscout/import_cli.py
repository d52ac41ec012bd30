"""`archscout import`: bring other people's candidates into a study (see importer.py).

    archscout import asi-arch PATH_OR_JSON [--tree tree.json] --study DIR
                                                           ASI-Arch's data/106.json (or its repo folder)
    archscout import FILES_OR_FOLDERS... --study DIR       candidate .py files

Each valid entry becomes an architecture with a queued experiment; `archscout run --study DIR`
evaluates them like any other candidate. Prints what was imported, what was already there and what
was rejected with its reason; a missing path or a file in the wrong format is one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def import_cmd(
    sources: list[str] = typer.Argument(..., help="`asi-arch PATH_OR_JSON`, or candidate .py files / folders"),
    study: Path = typer.Option(Path("study"), "--study", help="study folder (created if missing)"),
    tree: Path | None = typer.Option(None, "--tree", help="asi-arch: their data/tree.json, for each architecture's ancestry"),
) -> None:
    """Import ASI-Arch's published architectures, or your own candidate files, into a study."""
    from archscout.cli_study import open_or_fail as _open
    from archscout.ui import fail
    from archscout.propose.importer import (
        ImportInputError,
        attach_tree,
        import_entries,
        parse_asi_arch,
        parse_tree,
        read_files,
    )

    asi = sources[0] == "asi-arch"
    nodes = None
    try:
        if asi:
            if len(sources) != 2:
                fail("usage: archscout import asi-arch PATH_OR_JSON --study DIR")
            entries, rejected = parse_asi_arch(Path(sources[1]))
            nodes = parse_tree(tree) if tree is not None else None
        else:
            if tree is not None:
                fail("--tree goes with `archscout import asi-arch`")
            if not any(Path(p).exists() for p in sources):
                fail(f"no such file: {sources[0]}" if len(sources) == 1 else "none of the given paths exists")
            entries, rejected = read_files([Path(p) for p in sources])
    except ImportInputError as err:
        fail(str(err))
    handle = _open(study, create=True)
    try:
        report = import_entries(handle, entries, source="asi-arch" if asi else None)
        in_tree = attach_tree(handle, nodes) if asi and nodes is not None else None
    finally:
        handle.close()
    rejected = rejected + report.rejected
    console.print(
        f"imported {len(report.imported)}, already in the study {len(report.present)}, "
        f"rejected {len(rejected)}" + (f"; {report.linked_parents} parent links" if report.linked_parents else ""),
        highlight=False,
    )
    if in_tree is not None:
        console.print(f"ancestry from the tree stored for {in_tree} architectures", highlight=False)
    if rejected:
        table = Table("entry", "reason", title="not imported")
        for label, reason in rejected:
            table.add_row(label, reason)
        console.print(table)
    if report.imported:
        console.print(f"evaluate them with: archscout run --study {study}", highlight=False)
    if not report.imported and not report.present:
        raise typer.Exit(1)
