"""Rich rendering shared by the CLI commands: the consoles, the one-line error exit (`fail`), the
evaluation progress bar and the result table.

Presentation only: no evaluation or storage logic. The sub-command modules (cognition, llm, import,
recheck, upgrade) import `console` and `fail` from here, not from cli.py, so that cli.py can
register them without an import cycle.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.rule import Rule
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
import typer

from archscout.config import Preset
from archscout.records import RunResult

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print `message` as one red line on stderr and exit with `code` (2: bad input, nothing written)."""
    from rich.markup import escape

    # one line, whatever a file name or a driver message holds
    line = " ".join(str(message).split())
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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
    if value is None:
        return "—"
    # NaN travels through JSON as the string "NaN"
    return value if isinstance(value, str) else fmt.format(value)


def render_result(console: Console, result: RunResult, title: str = "") -> None:
    head = Table(title=f"{title} · preset {result.preset} · seed {result.seed}", show_header=False)
    head.add_row("status", "[green]ok[/]" if result.ok else f"[red]failed[/] ({result.failure.kind.value})")
    if result.failure:
        head.add_row("reason", result.failure.message)
    head.add_row("val loss (LM)", _fmt(result.val_loss))
    lm = next((t for t in result.tasks.values() if t.kind == "lm" and t.ar_hits is not None), None)
    if lm is not None:
        # the in-context part of the LM loss: bigrams repeated within a sequence (Zoology's AR hits)
        head.add_row("LM loss: AR hits / other", f"{_fmt(lm.ar_hit_loss)} / {_fmt(lm.other_loss)}  ({lm.ar_hits:,} hits)")
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


class RunView:
    """Live view of `archscout run`: stage, counts, the best single run's fitness and the posterior
    best (mean, 90 % interval, runs), ETA, and the training bars."""

    def __init__(self, console: Console, budget: int, done_before: int):
        self.console, self.budget, self.done_before = console, budget, done_before
        self.stage, self.seq, self.best = "starting", 0, None
        self.best_posterior: dict | None = None  # the posterior best (loop.py's end event)
        self.finished: list[float] = []
        self.started_exp: float | None = None
        self.counts: dict[str, int] = {}
        self.bar = Progress(
            TextColumn("  [dim]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), console=console,
        )
        self.task_bars: dict[str, int] = {}
        self.workers = ""  # the parallel driver's line (--workers N)

    def event(self, event: dict) -> None:
        import time

        stage = event.get("stage")
        if stage == "start":
            self.seq, self.started_exp = event["seq"], time.monotonic()
            self._reset_bars()
        elif stage == "end":
            if self.started_exp is not None:
                self.finished.append(time.monotonic() - self.started_exp)
            state = event.get("state", "")
            self.counts[state] = self.counts.get(state, 0) + 1
            if event.get("reason"):
                self.console.print(f"  experiment {event['seq']} failed: {event['reason']}", style="yellow", highlight=False)
        elif stage == "baseline":
            self.stage = f"baseline seed {event['seed']} ({event['of']} seeds)"
            self._reset_bars()
        elif stage == "pool":
            self.console.print(f"  pool re-ranked: version {event['version']}, {event['size']} members", highlight=False)
        elif stage == "workers":
            # parallel/driver.py: the Ray workers' slots; shown under the stage line
            rate = f" · {event['per_hour']:.0f} experiments/h" if event.get("per_hour") else ""
            self.workers = f"workers {event['busy']} busy / {event['idle']} idle · {event['in_flight']} evaluations in flight{rate}"
            return
        elif stage == "resume":
            self.stage = f"resuming experiment {event['seq']} from '{event['state']}'"
        elif stage:
            self.stage = stage
        if event.get("note"):
            # e.g. an LLM budget reached, an LLM analysis that failed: worth a line in the scrollback
            self.console.print(f"  {event['note']}", style="yellow", highlight=False, markup=False)
        if "best" in event:
            self.best = event["best"]
        if event.get("best_posterior"):
            self.best_posterior = event["best_posterior"]
        name = event.get("task")
        if name and "steps" in event:
            if name not in self.task_bars:
                self.task_bars[name] = self.bar.add_task(name, total=event["steps"], info="")
            self.bar.update(self.task_bars[name], completed=event["step"], info=f"loss {event['loss']:.3f}")

    def _reset_bars(self) -> None:
        for task_id in self.task_bars.values():
            self.bar.remove_task(task_id)
        self.task_bars = {}

    def __rich__(self):
        from rich.console import Group

        done = self.done_before + sum(self.counts.values())
        left = max(0, self.budget - done)
        eta = "—"
        if self.finished:
            seconds = left * sum(self.finished) / len(self.finished)
            eta = f"{seconds / 60:.0f} min"
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]experiment[/] {self.seq}/{self.budget}", f"[bold]stage[/] {self.stage}",
            f"[green]done[/] {self.counts.get('done', 0)}", f"[red]failed[/] {self.counts.get('failed', 0)}",
            f"[bold]best run[/] {_fmt(self.best)}", f"[bold]ETA[/] {eta}",
        )
        grid = [head]
        if self.best_posterior:
            post = self.best_posterior
            grid.append(Text(f"  best posterior #{post['arch_id']} {fmt_posterior(post)}, 90% interval over its runs",
                             style="bold"))
        if self.workers:
            grid.append(Text(f"  {self.workers}", style="dim"))
        return Group(*grid, self.bar)


def render_status(console: Console, data: dict) -> None:
    exp = data["experiments"]
    head = Table(title=f"study {data['study']} · preset {data['preset']} · {data['folder']}", show_header=False)
    head.add_row("experiments", f"{exp['total']} of budget {data['budget']}: {exp['done']} done, "
                 f"{exp['failed']} failed, {exp['in_progress']} in progress")
    if exp["failed_by_reason"]:
        head.add_row("failures", ", ".join(f"{k} {v}" for k, v in sorted(exp["failed_by_reason"].items())))
    if data.get("workers"):
        w = data["workers"]
        head.add_row("workers", f"{w['busy']} busy, {w['idle']} idle on {w['drivers']} live driver(s); "
                     f"{w['in_flight']} in flight; {w['per_hour_last_hour']} finished in the last hour")
    if data["pool"]:
        head.add_row("pool", f"version {data['pool']['version']}, {data['pool']['size']} members")
    base = data["baseline"]
    for key, stats in base.items():
        if isinstance(stats, dict) and "mean" in stats:
            std = "n/a" if stats["std"] is None else f"{stats['std']:.4f}"  # one seed: no noise estimate
            head.add_row(f"baseline {key}", f"{stats['mean']:.4f} ± {std} (n={stats['n']})")
    if data.get("isolation"):
        iso = data["isolation"]
        runs = ", ".join(f"{k} {v}" for k, v in sorted(iso["runs"].items())) or "none yet"
        head.add_row("isolation", f"{iso['level']} here now ({iso['reason']}); runs: {runs}")
    if data.get("llm"):
        tot = data["llm"]["totals"]
        limits = [f"{data['llm'][k]:,} tokens" if k == "budget_tokens" else f"${data['llm'][k]:.2f}"
                  for k in ("budget_tokens", "budget_usd") if data["llm"][k] is not None]
        head.add_row("LLM spend", f"{tot['calls']} calls, {tot['tokens_in']:,} in / {tot['tokens_out']:,} out tokens, "
                     f"${tot['cost_usd']:.4f}" + (f" (budget {', '.join(limits)})" if limits else ""))
    console.print(head)
    if data.get("quarantine"):
        held = Table(title="quarantine (no fitness until `archscout recheck ID` clears it)")
        for col in ("id", "name", "state", "reason"):
            held.add_column(col)
        for q in data["quarantine"]:
            held.add_row(str(q["id"]), q["name"], q["state"], Text(q["reason"]))
        console.print(held)
    if data.get("llm"):
        spend = Table(title="LLM spend per agent")
        for col in ("agent", "calls", "failed", "tokens in", "tokens out", "cost $"):
            spend.add_column(col)
        for agent, row in data["llm"]["by_agent"].items():
            spend.add_row(agent, str(row["calls"]), str(row["failed"]), f"{row['tokens_in']:,}",
                          f"{row['tokens_out']:,}", f"{row['cost_usd']:.4f}")
        console.print(spend)
    best = Table(title="best architectures (exploration run; posterior over all runs, 90% interval)")
    for col in ("id", "name", "origin", "parent", "fitness", "posterior", "val loss", "benchmark"):
        best.add_column(col)
    for row in data["best"]:
        best.add_row(str(row["id"]), row["name"], row["origin"], str(row["parent_id"] or "—"),
                     _fmt(row["fitness"]), fmt_posterior(row.get("posterior")),
                     _fmt(row["val_loss"]), _fmt(row["benchmark"]))
    console.print(best)
    if data.get("ladder"):
        render_ladder(console, data["ladder"])


def fmt_posterior(post: dict | None) -> str:
    """A posterior fitness as the terminal prints it: mean [90 % interval] (runs combined)."""
    if not post:
        return "—"
    n = post.get("n") or 0
    return f"{post['mean']:.4f} [{post['lo']:.4f}, {post['hi']:.4f}] ({n} run{'' if n == 1 else 's'})"


def render_posteriors(console: Console, rows: list[dict]) -> None:
    """`archscout report`'s best candidates by posterior (report.posterior_rows)."""
    table = Table(title="best by posterior fitness (90% interval, runs combined; full list in posterior.csv)")
    for col in ("id", "name", "origin", "fitness (one run)", "posterior"):
        table.add_column(col)
    for row in rows:
        post = {"mean": row["mean"], "lo": row["lo90"], "hi": row["hi90"], "n": row["runs"]}
        table.add_row(str(row["id"]), row["name"], row["origin"], _fmt(row["fitness"]), fmt_posterior(post))
    console.print(table)


def render_ladder(console: Console, ladder: dict) -> None:
    """Candidates per rung and the promotion batches' decisions (ladder.py)."""
    rungs = Table(title=f"ladder: {ladder['verified']} verified, {ladder['demoted']} given seeds at the first "
                        "rung and then held back")
    for col in ("rung", "candidates"):
        rungs.add_column(col)
    for rung in ladder["rungs"]:
        rungs.add_row(rung, str(ladder["at_rung"].get(rung, 0)))
    console.print(rungs)
    if ladder["batches"]:
        moves = Table(title="promotions (latest 5 batches)")
        for col in ("batch", "after exp.", "arch", "action", "rung", "why"):
            moves.add_column(col)
        for batch in ladder["batches"][-5:]:
            for item in batch["plan"]:
                moves.add_row(str(batch["batch"]), str(batch["experiments_seen"]), str(item["architecture_id"]),
                              item["action"], item["rung"], Text(item["reason"]))
        console.print(moves)
    if ladder.get("stop"):
        console.print(Text(f"stopped after {ladder['stop']['experiments']} experiments: {ladder['stop']['reason']}"))


def render_architecture(console: Console, data: dict) -> None:
    from rich.syntax import Syntax

    parent = data["parent"]
    console.print(f"[bold]#{data['id']} {data['name']}[/] ({data['origin']}; parent "
                  f"{'#' + str(parent['id']) + ' ' + parent['name'] if parent else '—'})", highlight=False)
    console.print(Text(data["motivation"]))
    if data.get("quarantine"):
        q = data["quarantine"]
        console.print(Text(f"{q['state'].upper()}: {q['reason']}", style="bold red" if q["state"] != "cleared" else ""))
    if data["score"]:
        sc = data["score"]
        console.print(f"fitness {sc['fitness']:.4f} = mean(loss {_fmt(sc.get('loss_term'))}, "
                      f"bench {_fmt(sc.get('bench_term'))}, judge[{sc.get('judge_kind')}] {_fmt(sc.get('judge_term'))})")
    if data.get("posterior"):
        post = data["posterior"]
        by_rung = ", ".join(f"{rung} {n}" for rung, n in post["runs"].items())
        console.print(f"posterior fitness {fmt_posterior(post)}, 90% interval; runs by rung: {by_rung}", highlight=False)
    runs = Table(title="runs")
    for col in ("stage", "preset", "seed", "status", "val loss", "benchmark", "params", "tokens/s", "note"):
        runs.add_column(col)
    for r in data["runs"]:
        runs.add_row(r["stage"], r["preset"], str(r["seed"]), r["status"], _fmt(r["val_loss"]), _fmt(r["benchmark"]),
                     _fmt(r["params"], "{:,}"), _fmt(r["tokens_per_s"], "{:,.0f}"), r["failure"] or "")
    console.print(runs)
    for a in data["analyses"]:
        console.print(f"[bold]analysis ({a['kind']})[/]")
        console.print(Text(a["text"]))
    if data["diff"]:
        console.print("[bold]diff against the parent[/]")
        console.print(Syntax(data["diff"], "diff", word_wrap=True))
    console.print("[bold]code[/]")
    console.print(Syntax(data["code"], "python", line_numbers=True))
    if data.get("trace") is not None:
        render_trace(console, data["trace"])


def render_trace(console: Console, calls: list[dict]) -> None:
    """Every LLM call behind an architecture: who was asked what, what came back, at what cost."""
    if not calls:
        console.print("no LLM calls produced this architecture")
        return
    for call in calls:
        cost = "unpriced" if call["cost_usd"] is None else f"${call['cost_usd']:.4f}"
        head = (f"#{call['id']} {call['agent']} · {call['model']} · {call['outcome']} · "
                f"{call['tokens_in']:,} in / {call['tokens_out']:,} out · {call['latency_s']:.2f} s · {cost}")
        console.print(Rule(head))
        if call["error"]:
            console.print(Text("error: " + call["error"]))
        console.print(Text("system:\n" + call["prompt"].get("system", ""), style="dim"))
        console.print(Text("user:\n" + call["prompt"].get("user", "")))
        console.print(Text("reply:\n" + (call["response"] or "(none)"), style="green"))


def render_verification(console: Console, result: dict) -> None:
    rule = result["rule"]
    table = Table(title=(f"verification at {result['preset']}: {rule['primary']} vs the baseline over seeds "
                         f"{result['baseline_seeds']}; BH q ≤ {rule['q']}, not worse on {rule['secondary']}"))
    for col in ("id", "name", "seeds", "effect on " + rule["primary"] + " [95% CI]", "q", "discovery", "reason"):
        table.add_column(col)
    for row in result["architectures"]:
        cmp = row["comparisons"].get(rule["primary"], {})
        effect = "—" if not cmp else f"{cmp['effect']:+.4f} [{cmp['ci_low']:+.4f}, {cmp['ci_high']:+.4f}]"
        verdict = row["verdict"]
        table.add_row(str(row["id"]), row["name"], str(len(row["seeds"])), effect, _fmt(verdict["q_value"], "{:.3g}"),
                      "[green]yes[/]" if verdict["discovery"] else "no", Text(verdict["reason"]))
    console.print(table)
    found = [r for r in result["architectures"] if r["verdict"]["discovery"]]
    if found:
        console.print(f"[bold green]{len(found)} verified discover{'y' if len(found) == 1 else 'ies'}[/]: "
                      + ", ".join(f"#{r['id']} {r['name']}" for r in found), highlight=False)
    else:
        console.print(f"[bold]No verified discoveries[/]: no architecture improved {rule['primary']} at "
                      f"FDR q ≤ {rule['q']} without being significantly worse on {rule['secondary']}; "
                      "each row's reason says which part failed.", highlight=False)
