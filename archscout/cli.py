"""The `archscout` command line (Typer + Rich).

Each command is a thin shell over a library function: it parses options, shows progress and
prints results. Errors the user can fix are printed as one line and exit non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from archscout.config import ConfigError, get_preset
from archscout.records import RunResult

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Autonomous, statistically honest architecture discovery.")
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command("eval")
def eval_cmd(
    file: Optional[Path] = typer.Argument(None, help="candidate .py file (the flash-linear-attention layer interface)"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="evaluate a built-in baseline instead, e.g. deltanet"),
    preset: str = typer.Option("tiny", help="evaluation preset: smoke | tiny | small | paper | your own"),
    presets_file: Optional[Path] = typer.Option(None, "--presets", help="TOML file with extra presets"),
    seed: int = typer.Option(0, help="training seed"),
    class_name: Optional[str] = typer.Option(None, "--class", help="mixer class name (default: DeltaNet, else the only nn.Module)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    as_json: bool = typer.Option(False, "--json", help="print the full RunResult as JSON"),
    keep_scratch: bool = typer.Option(False, help="keep the sandbox's scratch folder for debugging"),
) -> None:
    """Probe and train one candidate on a preset's proxy tasks; exit 1 if it fails."""
    from archscout.evaluate.runner import evaluate_file
    from archscout.space import baseline_path
    from archscout.ui import eval_progress, render_result

    if (file is None) == (baseline is None):
        fail("give either a FILE or --baseline NAME")
    try:
        path = baseline_path(baseline) if baseline else file
        if not path.is_file():
            fail(f"no such file: {path}")
        spec = get_preset(preset, presets_file)
    except (ConfigError, ValueError) as err:
        fail(str(err))
    with eval_progress(console, spec, quiet=as_json) as sink:
        result = evaluate_file(path, spec, seed, class_name=class_name, device=device, progress=sink, keep_scratch=keep_scratch)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        render_result(console, result, title=str(path.name))
    _exit_for(result)


def _exit_for(result: RunResult) -> None:
    if not result.ok:
        err_console.print(f"[bold red]failed[/] ({result.failure.kind.value}): {result.failure.message}", highlight=False)
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
