"""`archscout calibrate`: run the panel over seeds at one or more presets, then print and write the
calibration (Rich table or JSON; CSV + PNG in `<dir>/report/`).

Everything the user can get wrong (preset names, K, panel file, member names) is checked before the
first evaluation; a problem is one line and exit 2, and evaluations finished earlier stay in the
store. The command is resumable: rerun it and finished (member, preset, seed) are skipped.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from archscout.ui import console, err_console, fail

MIN_BOOTSTRAP = 20


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def calibrate_cmd(
    preset: str = typer.Option("nano", "--preset", help="preset(s), comma-separated: nano | tiny,... (first = the cheap rung)"),
    seeds: int = typer.Option(3, "--seeds", help="seeds per member and preset (K >= 2)"),
    panel_file: Optional[Path] = typer.Option(None, "--panel", help="panel TOML (default: the built-in panel)"),
    members: Optional[str] = typer.Option(None, "--members", help="only these panel members, comma-separated"),
    folder: Optional[Path] = typer.Option(None, "--dir", help="calibration folder (default: <study>/calibration)"),
    study: Path = typer.Option(Path("study"), "--study", help="study folder whose calibration/ holds the results"),
    presets_file: Optional[Path] = typer.Option(None, "--presets", help="TOML file with extra presets"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="bootstrap resamples for the CIs"),
) -> None:
    """Measure the instrument: seed noise, ICC, separation, published orderings, fidelity between presets."""
    from archscout.calibration.panel import PanelError, load_panel, select
    from archscout.calibration.run import CalibrationError, member_hashes, pending, plan, preset_keys
    from archscout.calibration.store import CalibrationStore
    from archscout.calibration.summary import fidelity, summarise, write_outputs
    from archscout.config import ConfigError, get_preset

    if seeds < 2:
        fail(f"--seeds must be at least 2 to measure seed noise, got {seeds}")
    if bootstrap < MIN_BOOTSTRAP:
        # checked now: the CIs are computed after every evaluation has run
        fail(f"--bootstrap must be at least {MIN_BOOTSTRAP} resamples for a confidence interval, got {bootstrap}")
    names = _split(preset)
    if not names:
        fail("--preset is empty")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        fail(f"--preset names '{twice[0]}' twice")
    try:
        specs = [get_preset(n, presets_file) for n in names]
        panel = select(load_panel(panel_file), _split(members))
    except (ConfigError, PanelError) as err:
        fail(str(err))
    folder = folder or study / "calibration"
    store = CalibrationStore(folder)
    try:
        hashes = member_hashes(panel)
        todo = pending(plan(panel, specs, seeds), store, hashes)
        if todo:
            _run_with_progress(todo, store, quiet=as_json)
        results = {p.name: _seeds(store.results(p.name, preset_keys(hashes, p)), seeds) for p in specs}
    except CalibrationError as err:
        fail(f"{err} — finished evaluations are kept in {store.path}")
    except KeyboardInterrupt:
        err_console.print(f"interrupted — finished evaluations are kept in {store.path}; rerun to resume")
        raise typer.Exit(130)
    finally:
        store.close()
    summaries = [summarise(panel, p, results[p], n_boot=bootstrap) for p in names]
    fids = [fidelity(summaries[i], summaries[i + 1], results[names[i]], results[names[i + 1]], n_boot=bootstrap) for i in range(len(names) - 1)]
    paths = write_outputs(folder / "report", summaries, results, fids)
    if as_json:
        sys.stdout.write(paths["json"].read_text() + "\n")
        return
    for s in summaries:
        render_summary(console, s)
    for f in fids:
        render_fidelity(console, f)
    for name, path in paths.items():
        console.print(f"{name:<10} {path}", highlight=False)


def _seeds(by_member: dict, seeds: int) -> dict:
    # a calibration reports the seeds asked for; more may be stored from an earlier, larger run
    return {m: [r for r in runs if r.seed < seeds] for m, runs in by_member.items()}


def _run_with_progress(todo, store, quiet: bool) -> None:
    from archscout.calibration.run import run_jobs

    if quiet:
        run_jobs(todo, store)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        overall = bar.add_task("calibration", total=len(todo), info="")
        current = {"label": ""}

        def start(job) -> None:
            current["label"] = f"{job.member.name} · {job.preset.name} · seed {job.seed}"
            bar.update(overall, info=current["label"])

        def done(job, result) -> None:
            wall = result.wall_s.get("total", float("nan"))
            state = "ok" if result.ok else f"failed ({result.failure.kind.value})"
            console.print(f"  {job.member.name:<20} {job.preset.name:<6} seed {job.seed}  {state}  {wall:.1f}s", highlight=False)
            bar.advance(overall)

        def step(event: dict) -> None:
            if "task" in event and "step" in event:
                bar.update(overall, info=f"{current['label']} | {event['task']} step {event['step']}")

        run_jobs(todo, store, on_start=start, on_done=done, progress=step)


def _pm(entry: dict | None, fmt: str = "{:.3f}") -> str:
    if not entry:
        return "—"
    std = entry.get("std")
    std_s = "" if std is None or not math.isfinite(std) else "±" + fmt.format(std)
    return fmt.format(entry["mean"]) + std_s


def _ci(est: dict) -> str:
    v, lo, hi = est.get("value"), est.get("ci_low"), est.get("ci_high")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


SHORT = {"val_loss": "loss", "ar_hit_loss": "AR-hit", "other_loss": "other", "benchmark": "bench",
         "fitness": "fit asi", "fitness_seed_sigma": "fit σ", "fitness_ar": "fit σ AR", "fitness_lm_mean": "fit σ mean"}


def render_summary(console: Console, s: dict) -> None:
    # per-task final accuracy is summarised by the learned share; its AUC keeps a column
    metrics = [m for m in s["metrics"] if m != "wall_s" and not m.startswith("acc:")]
    # two tables (measurements, then the fitness formulas) so that each fits a terminal's width
    # the loss on the non-hit tokens tracks val loss closely; it is in the JSON and CSV, not here
    measured = [m for m in metrics if not m.startswith("fitness") and m != "other_loss"]
    fitness = [m for m in metrics if m.startswith("fitness")]
    _metric_table(console, s, measured, f"calibration · preset {s['preset']} · mean ± seed std · ⌊ floor", extra=True)
    if fitness:
        _metric_table(console, s, fitness, f"fitness · preset {s['preset']} · asi-arch, seed-sigma (σ), loss term from AR hits / mean", extra=False)
    for o in s["orderings"]:
        console.print(f"Kendall τ vs {o['name']} ({o['metric']}, n={o['n']}): {_ci(o['tau'])}  — {o['source']}", highlight=False)
    base = s["baseline"]
    floors = [name for name, e in s["members"].items() if e["floor"]]
    for other in ["linear_attention", *floors]:
        sep = {m: s["metrics"][m]["separation"].get(base, {}).get(other) for m in metrics}
        shown = ", ".join(f"{m} {v:+.1f}σ" for m, v in sep.items() if isinstance(v, (int, float)) and not math.isnan(v))
        if shown:
            console.print(f"{base} vs {other} (pooled seed σ): {shown}", highlight=False)
    flag = "yes" if s["baseline_learns_every_task_on_every_seed"] else "NO — the preset measures luck on some task"
    console.print(f"baseline learns every task on every seed (acc ≥ {s['learned_at']}): {flag}", highlight=False)


def _metric_table(console: Console, s: dict, metrics: list[str], title: str, extra: bool) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("member", no_wrap=True, max_width=20)
    table.add_column("n", justify="right", no_wrap=True)
    for m in metrics:
        table.add_column(SHORT.get(m, m), justify="right", no_wrap=True)
    if extra:
        table.add_column("learned", justify="right", no_wrap=True)
        table.add_column("wall s", justify="right", no_wrap=True)
    tail = 2 if extra else 0
    for name, e in s["members"].items():
        learned = ", ".join(f"{v:.0%}" for v in e["learned_share"].values()) or "—"
        label = f"{name} ⌊" if e["floor"] else name
        n = f"{e['n_ok']}" + (f" +{e['n_failed']} failed" if e["n_failed"] else "")
        cells = [_pm(e["metrics"].get(m)) for m in metrics]
        if extra:
            cells += [learned, _pm(e["metrics"].get("wall_s"), "{:.0f}")]
        table.add_row(label, n, *cells)
    table.add_row("ICC [CI]", "", *[_ci(s["metrics"][m].get("icc", {})) for m in metrics], *[""] * tail, style="bold")
    table.add_row("floors last", "", *[{True: "yes", False: "NO", None: "—"}[s["metrics"][m].get("floors_last")] for m in metrics], *[""] * tail)
    console.print(table)


def render_fidelity(console: Console, f: dict) -> None:
    parts = ", ".join(f"{m} {_ci(v['rho'])}" for m, v in f["metrics"].items())
    console.print(f"Spearman ρ {f['from']} → {f['to']} (n={next(iter(f['metrics'].values()), {}).get('n', 0)}): {parts}", highlight=False)


def latest_summary(study: Path, preset: str) -> dict | None:
    path = Path(study) / "calibration" / f"summary-{preset}.json"
    return json.loads(path.read_text()) if path.is_file() else None
