"""`archscout cognition ...`: search the Cognition base by symptom and read one entry.

Thin shell over `archscout.cognition.index`; it does not edit entries or talk to an LLM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from archscout.cognition.index import CognitionBase

cognition_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The Cognition base: research digests retrieved by the symptom an experiment shows.",
)
console = Console()

_DIR_HELP = "extra folder of your own entry .json files (repeatable)"


def _fail(message: str) -> None:
    from archscout.ui import fail

    fail(message)


def _load(dirs: Optional[list[Path]]) -> CognitionBase:
    # imported on use: the index pulls in numpy and bm25s, which every other command can do without
    from archscout.cognition.index import CognitionBase, CognitionError

    try:
        return CognitionBase.load(list(dirs or []))
    except CognitionError as err:
        _fail(str(err))


@cognition_app.command("search")
def search_cmd(
    query: str = typer.Argument(..., help="a symptom, e.g. 'MQAR recall collapses as pairs grow'"),
    k: int = typer.Option(5, "-k", help="how many entries to show"),
    dirs: Optional[list[Path]] = typer.Option(None, "--dir", help=_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the hits as JSON"),
) -> None:
    """Entries whose trigger best matches QUERY (BM25 + MiniLM, fused by reciprocal rank)."""
    from archscout.cognition.index import CognitionError

    base = _load(dirs)
    try:
        hits = base.search(query, k=k)
    except CognitionError as err:
        _fail(str(err))
    rows = [
        {"rank": r, "id": h.entry.id, "title": h.entry.title, "score": round(h.score, 5),
         "bm25_rank": h.bm25_rank, "dense_rank": h.dense_rank, "trigger": h.entry.trigger}
        for r, h in enumerate(hits, start=1)
    ]
    if as_json:
        sys.stdout.write(json.dumps({"backend": base.backend, "hits": rows}, indent=2) + "\n")
        return
    if not rows:
        console.print(f"no entry's trigger shares a word with the query (backend: {base.backend})")
        return
    table = Table(title=f"cognition: {query}", caption=f"backend: {base.backend}")
    table.add_column("rank", justify="right")
    # ids are what `show` takes, so they are never wrapped or cut
    table.add_column("id", no_wrap=True, min_width=max(len(row["id"]) for row in rows))
    table.add_column("title", overflow="fold", ratio=1)
    table.add_column("score", justify="right")
    table.add_column("trigger", overflow="fold", ratio=2)
    for row in rows:
        table.add_row(str(row["rank"]), row["id"], row["title"], f"{row['score']:.4f}", row["trigger"])
    console.print(table)


@cognition_app.command("show")
def show_cmd(
    entry_id: str = typer.Argument(..., metavar="ID", help="entry id, as printed by `search`"),
    dirs: Optional[list[Path]] = typer.Option(None, "--dir", help=_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the entry as JSON"),
) -> None:
    """Print one entry in full."""
    from archscout.cognition.index import CognitionError

    try:
        entry = _load(dirs).get(entry_id)
    except CognitionError as err:
        _fail(str(err))
    if as_json:
        sys.stdout.write(entry.model_dump_json(indent=2) + "\n")
        return
    console.print(f"[bold]{entry.title}[/]  ({entry.id})", highlight=False)
    for field in ("source", "trigger", "background", "algorithm", "implementation"):
        console.print(f"\n[bold cyan]{field}[/]", highlight=False)
        console.print(getattr(entry, field), highlight=False, markup=False)
    console.print(f"\n[bold cyan]tags[/] {', '.join(entry.tags)}", highlight=False)
