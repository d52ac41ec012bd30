"""`archscout recheck ID`: the stricter re-check that can clear a quarantined architecture.

Thin command-line wrapper around `quarantine.recheck` (which see for what the re-check runs and
decides); registered in cli.py. Bad input (no such architecture, not quarantined) is a one-line
error with exit code 2 and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("recheck")
    def recheck_cmd(
        arch_id: int = typer.Argument(..., help="id of a quarantined architecture"),
        study: Path = typer.Option(Path("study"), "--study", help="study folder"),
        seeds: int = typer.Option(2, min=1, help="fresh seeds to re-evaluate it on"),
    ) -> None:
        """Re-evaluate a quarantined architecture (fresh processes, other seeds, more causality
        checks at several lengths); it is cleared and scored if every re-run passes."""
        from rich.live import Live

        from archscout import quarantine
        from archscout.cli_study import open_or_fail as _open
        from archscout.ui import RunView, console, fail, fmt_posterior

        handle = _open(study)
        try:
            held = quarantine.entry(handle.db, arch_id, handle.preset.name)
            if handle.db.architecture(arch_id) is None:
                fail(f"no architecture #{arch_id} in {study}")
            if held is None or held["state"] != quarantine.QUARANTINED:
                state = held["state"] if held else "not quarantined"
                fail(f"architecture #{arch_id} is {state} at preset {handle.preset.name}; nothing to re-check")
            view = RunView(console, 0, 0)
            with Live(view, console=console, refresh_per_second=4, transient=True):
                outcome = quarantine.recheck(handle, arch_id, seeds=seeds, events=view.event)
            post = None
            if outcome["state"] == quarantine.CLEARED:
                from archscout.ladder import study_posteriors

                found = study_posteriors(handle).get(arch_id)
                post = found.as_dict() if found else None
        finally:
            handle.close()
        if outcome["state"] == quarantine.CLEARED:
            console.print(f"#{arch_id} cleared: every re-run passed; fitness {outcome['fitness']:.4f}, posterior "
                          f"{fmt_posterior(post)} (90% interval, runs combined)", highlight=False)
        else:
            console.print(f"#{arch_id} confirmed: " + "; ".join(outcome["problems"]), highlight=False)
            raise typer.Exit(1)
