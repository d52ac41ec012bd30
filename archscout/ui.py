"""Rich rendering shared by the CLI commands: the evaluation progress bar and the result table.

Presentation only: no evaluation or storage logic.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from archscout.config import Preset
from archscout.records import RunResult


@contextmanager
def eval_progress(console: Console, preset: Preset, quiet: bool = False) -> Iterator:
    """Yields a sink for worker progress events that drives one bar per task."""
    if quiet:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        stage = bar.add_task("probes", total=1, info="")
        bars = {t.name: bar.add_task(t.name, total=t.optim.steps, info="", start=False) for t in preset.tasks}

        def sink(event: dict) -> None:
            phase = event.get("phase")
            if phase == "train" and "task" not in event:
                bar.update(stage, completed=1, info="passed")
            name = event.get("task")
            if name in bars:
                bar.start_task(bars[name])
                if "steps" in event:
                    bar.update(bars[name], completed=event["step"], info=f"loss {event['loss']:.3f}")
                elif "eval" in event:
                    bar.update(bars[name], info=f"eval {event['eval']:.3f}")

        yield sink


def _fmt(value, fmt: str = "{:.4f}") -> str:
    return "—" if value is None else fmt.format(value)


def render_result(console: Console, result: RunResult, title: str = "") -> None:
    head = Table(title=f"{title} · preset {result.preset} · seed {result.seed}", show_header=False)
    head.add_row("status", "[green]ok[/]" if result.ok else f"[red]failed[/] ({result.failure.kind.value})")
    if result.failure:
        head.add_row("reason", result.failure.message)
    head.add_row("val loss (LM)", _fmt(result.val_loss))
    head.add_row("benchmark", _fmt(result.benchmark))
    head.add_row("mixer params", _fmt(result.params, "{:,}"))
    head.add_row("model params", _fmt(result.total_params, "{:,}"))
    head.add_row("tokens/s (LM train)", _fmt(result.tokens_per_s, "{:,.0f}"))
    head.add_row("wall", "  ".join(f"{k} {v:.1f}s" for k, v in result.wall_s.items()))
    head.add_row("isolation", result.isolation or "—")
    console.print(head)
    if result.tasks:
        tasks = Table(title="tasks")
        for col in ("task", "steps", "val loss", "accuracy", "acc AUC", "tokens/s", "wall s"):
            tasks.add_column(col)
        for t in result.tasks.values():
            tasks.add_row(
                t.name, f"{t.steps_done}/{t.steps_planned}", _fmt(t.val_loss), _fmt(t.accuracy),
                _fmt(t.accuracy_auc), f"{t.tokens_per_s:,.0f}", f"{t.wall_s:.1f}",
            )
        console.print(tasks)
    if result.probes:
        probes = Table(title="probes")
        for col in ("probe", "result", "reason"):
            probes.add_column(col)
        for p in result.probes:
            probes.add_row(p.name, "[green]pass[/]" if p.passed else "[red]fail[/]", p.reason)
        console.print(probes)
    if result.failure and result.failure.log_tail:
        console.print(Text(result.failure.log_tail[-1500:], style="dim"))
