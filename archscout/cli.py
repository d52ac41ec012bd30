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

from archscout.cli_study import database_errors as _database_errors
from archscout.cli_study import open_or_fail as _open
from archscout.cognition.cli import cognition_app
from archscout.config import ConfigError, get_preset
from archscout.agents.base import LLMError
from archscout.records import RunResult
from archscout.ui import console, err_console, fail

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Autonomous, statistically honest architecture discovery.")


@app.callback()
def _root() -> None:
    """archscout: propose, probe, train and verify linear-attention token mixers."""


app.add_typer(cognition_app, name="cognition")


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
    from archscout.evaluate.runner import evaluate
    from archscout.space import baseline_path
    from archscout.ui import eval_progress, render_result

    if (file is None) == (baseline is None):
        fail("give either a FILE or --baseline NAME")
    from archscout.inputs import InputError, candidate_text

    try:
        path = baseline_path(baseline) if baseline else file
        candidate_text(path)
        spec = get_preset(preset, presets_file)
    except (ConfigError, ValueError, InputError) as err:
        fail(str(err))
    from archscout.evaluate.sandbox import SandboxError

    _say_isolation(err_console if as_json else console)
    try:
        with eval_progress(console, spec, quiet=as_json) as sink:
            result = evaluate(path, spec, seed, class_name=class_name, device=device, progress=sink, keep_scratch=keep_scratch)
    except SandboxError as err:
        fail(f"the sandbox could not start (not the candidate's fault): {err}")
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        render_result(console, result, title=str(path.name))
    _exit_for(result)


def _say_isolation(where: Console) -> None:
    from archscout.isolation import start_line

    where.print(start_line(), highlight=False, soft_wrap=True)


def _overrides(pairs: list[str]) -> dict:
    from archscout.study import parse_value

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--set expects KEY=VALUE, got '{pair}'")
        out[key.strip()] = parse_value(value.strip())
    return out


@app.command("run")
def run_cmd(
    study: Path = typer.Option(Path("study"), "--study", help="study folder (created if missing)"),
    budget: Optional[int] = typer.Option(None, help="total experiments to reach (default: the study's budget)"),
    hours: Optional[float] = typer.Option(None, help="stop starting new experiments after this many hours"),
    target_fitness: Optional[float] = typer.Option(None, help="stop when the best posterior lower bound reaches this"),
    patience: Optional[int] = typer.Option(None, help="stop after this many experiments without a better posterior best"),
    cpu_hours: Optional[float] = typer.Option(None, help="stop when the runs have used this many CPU-hours"),
    preset: Optional[str] = typer.Option(None, help="evaluation preset of a new study (default tiny)"),
    selection: Optional[str] = typer.Option(None, help="parent selection: top (pool) | random (control) | thompson"),
    ladder: Optional[str] = typer.Option(None, help="a new study's scale ladder: presets cheapest first, e.g. smoke,nano"),
    proposer: Optional[str] = typer.Option(None, help="offline (genome mutations) | llm (the agents, configured in the llm table of study.toml)"),
    set_: list[str] = typer.Option([], "--set", help="override a config field, e.g. --set pool.cold_start=10"),
    db: Optional[str] = typer.Option(None, "--db", help="keep a new study in this database (postgresql+psycopg://user@host/db), shared by every driver that names it"),
    workers: int = typer.Option(1, "--workers", help="evaluations at once, as Ray tasks (N > 1 starts Ray on this machine)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="attach to a running Ray cluster (HOST:PORT of `ray start --head`)"),
) -> None:
    """Start or resume a study: propose, check, train, score and analyse until the budget."""
    from archscout.evaluate.sandbox import SandboxError
    from archscout.loop import BaselineFailed, Loop
    from archscout.store.errors import StoreError
    from archscout.ui import RunView

    overrides = _overrides(set_)
    if preset:
        overrides["preset"] = preset
    if budget is not None:
        overrides["budget"] = budget
    if selection:
        overrides["pool.selection"] = selection
    if ladder:
        overrides["ladder.rungs"] = [r.strip() for r in ladder.split(",") if r.strip()]
    if proposer:
        overrides["proposer"] = proposer
    if db:
        overrides["db_url"] = db
    refusal = _refuse_llm_fallback(study, overrides)
    if refusal:
        fail(refusal)
    from archscout.stopping import StopRules, budget_and_done, check_rules

    rules = StopRules(target_fitness=target_fitness, patience=patience, cpu_hours=cpu_hours)
    # the study's budget and count matter only to a patience no run could reach
    counts = budget_and_done(study, overrides) if patience is not None else ()
    if problem := check_rules(rules, *counts, hours):
        fail(problem)
    from archscout.parallel import ParallelError, connect

    try:  # before the study is opened: a bad address or worker count writes nothing
        ray_pool = connect(study, overrides, workers, ray_address)
    except ParallelError as err:
        fail(str(err))
    handle = _open(study, overrides, create=True)
    _say_isolation(console)
    team = None
    if handle.config.proposer == "llm":
        from archscout.cognition.index import CognitionError
        from archscout.agents.team import Team

        try:
            team = Team(handle)
        except (LLMError, CognitionError) as err:
            handle.close()
            fail(str(err))
    loop = Loop(handle, team=team)
    loop.stop_rules = rules
    view = RunView(console, handle.config.budget, loop.experiments_counted())
    loop.events = view.event
    if ray_pool is not None:
        from archscout.parallel.driver import ParallelDriver

        ParallelDriver(ray_pool).attach(loop)
    from rich.live import Live

    ladder_view = None
    try:
        with Live(view, console=console, refresh_per_second=4, transient=True):
            counts = loop.run(hours=hours)
        if handle.config.ladder.rungs:
            from archscout.ladder import final_verdicts, rung_table

            ladder_view = (rung_table(handle), final_verdicts(handle))
    except KeyboardInterrupt:
        err_console.print(f"stopped; resume with: archscout run --study {study}")
        raise typer.Exit(130)
    except (StoreError, SandboxError) as err:
        fail(f"{err} — the study is intact; run the same command again to resume")
    except BaselineFailed as err:
        fail(str(err))
    except LLMError as err:
        fail(f"{err} — nothing was lost; fix it and run the same command again to resume")
    finally:
        handle.close()
        if ray_pool is not None:
            ray_pool.shutdown()
    if loop.stopped_by:
        err_console.print(f"stopped before the budget: {loop.stopped_by}")
    if ladder_view is not None:
        from archscout.ui import render_ladder, render_verification

        render_ladder(console, ladder_view[0])
        if ladder_view[1] is not None:
            render_verification(console, ladder_view[1])
    console.print(
        f"[bold]{counts.get('done', 0)} done, {counts.get('failed', 0)} failed[/] in {study}. "
        f"Look at it with: archscout status --study {study}  |  archscout show ID --study {study}"
    )


def _refuse_llm_fallback(study: Path, overrides: dict) -> str | None:
    """Checked before the study is opened, so that bad input or a refused run writes nothing: the
    study path, the config, the baseline file, and model-written code without namespaces."""
    from archscout.inputs import InputError, candidate_text, study_folder
    from archscout.isolation import llm_refusal
    from archscout.space import BASELINES
    from archscout.study import load_config

    try:
        study_folder(study)
        config = load_config(study, overrides)
        if config.baseline not in BASELINES:
            try:
                candidate_text(Path(config.baseline))
            except InputError as err:
                raise InputError(f"baseline '{config.baseline}' in {study / 'study.toml'}: {err}") from None
    except (ConfigError, InputError) as err:
        fail(str(err))
    if config.proposer != "llm":
        return None
    return llm_refusal(config.sandbox.allow_fallback)


@app.command("add")
def add_cmd(
    file: Path = typer.Argument(..., help="your candidate .py file"),
    study: Path = typer.Option(Path("study"), "--study", help="study folder"),
) -> None:
    """Add your own candidate file to a study; it is evaluated and scored like any other."""
    from archscout.loop import Loop

    from archscout.inputs import InputError, candidate_text

    try:
        candidate_text(file)
    except InputError as err:
        fail(str(err))
    from archscout.evaluate.sandbox import SandboxError
    from archscout.loop import BaselineFailed
    from archscout.store.errors import StoreError

    handle = _open(study, create=True)
    try:
        exp = Loop(handle).add_user_file(file)
    except (BaselineFailed, StoreError, SandboxError) as err:
        fail(str(err))
    finally:
        handle.close()
    if exp.state == "failed":
        fail(f"experiment {exp.seq} failed ({exp.failure_reason}): {exp.failure_message}", code=1)
    console.print(f"added as architecture #{exp.architecture_id} (experiment {exp.seq})")


@app.command("status")
def status_cmd(
    study: Path = typer.Option(Path("study"), "--study", help="study folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Summarise a study: experiments, baseline noise floor, best architectures."""
    import json

    from archscout.summary import status
    from archscout.ui import render_status

    handle = _open(study, read=True)
    try:
        with _database_errors(study):
            data = status(handle)
    finally:
        handle.close()
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        render_status(console, data)


@app.command("show")
def show_cmd(
    arch_id: int = typer.Argument(..., help="architecture id"),
    study: Path = typer.Option(Path("study"), "--study", help="study folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    with_trace: bool = typer.Option(False, "--trace", help="also the LLM calls (prompts, replies, cost) that produced it"),
) -> None:
    """One architecture: motivation, code, diff against its parent, runs, fitness, analysis."""
    import json

    from archscout.summary import architecture
    from archscout.ui import render_architecture

    from archscout.inputs import InputError, architecture_id

    try:
        architecture_id(arch_id)
    except InputError as err:
        fail(str(err))
    handle = _open(study, read=True)
    try:
        with _database_errors(study):
            data = architecture(handle, arch_id, with_trace=with_trace)
    finally:
        handle.close()
    if data is None:
        fail(f"no architecture #{arch_id} in {study}")
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        render_architecture(console, data)


@app.command("verify")
def verify_cmd(
    study: Path = typer.Option(Path("study"), "--study", help="study folder"),
    top: Optional[int] = typer.Option(None, help="re-evaluate this many of the best explored architectures"),
    seeds: Optional[int] = typer.Option(None, help="fresh seeds per architecture (never used in exploration)"),
    preset: Optional[str] = typer.Option(None, help="verify at this preset (default: the study's)"),
) -> None:
    """Re-evaluate the best architectures over fresh seeds; FDR-controlled test against the baseline."""
    from rich.live import Live

    from archscout.evaluate.sandbox import SandboxError
    from archscout.store.errors import StoreError
    from archscout.ui import RunView, render_verification
    from archscout.verify import Verifier

    handle = _open(study)
    _say_isolation(console)
    view = RunView(console, 0, 0)
    try:
        with Live(view, console=console, refresh_per_second=4, transient=True):
            result = Verifier(handle, view.event).run(top, seeds, preset)
    except KeyboardInterrupt:
        err_console.print(f"stopped; finished seeds are kept: archscout verify --study {study} resumes")
        raise typer.Exit(130)
    except (ConfigError, StoreError, SandboxError, ValueError) as err:
        fail(str(err))
    finally:
        handle.close()
    render_verification(console, result)


@app.command("report")
def report_cmd(
    study: Path = typer.Option(Path("study"), "--study", help="study folder"),
    site: Optional[Path] = typer.Option(None, "--site", help="also write the dashboard as static HTML into this folder (opens from disk)"),
) -> None:
    """Write the noise floor, verification, shrinkage, fidelity and scaling data + figures."""
    from archscout.analyze.agreement import agreement_lines, external_agreement
    from archscout.report import write_report

    from archscout.calibration.cli import latest_summary, render_summary

    from archscout.report import posterior_rows
    from archscout.ui import render_posteriors

    handle = _open(study, read=True)
    try:
        paths = write_report(handle)
        render_posteriors(console, posterior_rows(handle)[:10])
        for line in agreement_lines(external_agreement(handle.db)):
            console.print(line, highlight=False)
        calibration = latest_summary(study, handle.preset.name)
        if site is not None:
            from archscout.web.export import write_site

            paths.update({f"site {k}": v for k, v in write_site(handle, site).items()})
    finally:
        handle.close()
    if calibration:
        # how far this study's preset can be trusted, measured by `archscout calibrate --study`
        render_summary(console, calibration)
    for name, path in paths.items():
        console.print(f"{name:<18} {path}", highlight=False)


@app.command("serve")
def serve_cmd(
    study: Path = typer.Option(Path("study"), "--study", help="study folder"),
    port: int = typer.Option(8765, help="TCP port"),
    host: str = typer.Option("127.0.0.1", help="interface to bind; anything but loopback needs --allow-remote"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="allow a non-loopback --host; every request then needs the token"),
    token: Optional[str] = typer.Option(None, help="the token for --allow-remote (default: a random one, printed)"),
) -> None:
    """Serve the read-only dashboard (overview, leaderboard, lineage, trends, architectures, failures)."""
    import secrets

    from archscout.web.study import StudyUnavailable

    from archscout.inputs import InputError, port as check_port, readable_study, token as check_token

    try:
        check_port(port)
        readable_study(study)
        if allow_remote and token is not None:
            check_token(token)
    except InputError as err:
        fail(str(err))
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not allow_remote:
        fail(f"--host {host} exposes the study beyond this machine; add --allow-remote (a token is then required)")
    if token is not None and loopback and not allow_remote:
        fail("--token is for --allow-remote")
    if allow_remote and token is None:
        token = secrets.token_urlsafe(24)
    import uvicorn

    from archscout.web.app import create_app

    try:
        web = create_app(study, token=token if allow_remote else None)
    except (StudyUnavailable, ConfigError) as err:
        fail(str(err))
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if allow_remote else "")
    # soft_wrap: a narrow terminal must not fold the token in the middle
    console.print(f"archscout dashboard for {study} at [bold]{url}[/] (read-only; Ctrl-C stops)", highlight=False, soft_wrap=True)
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _exit_for(result: RunResult) -> None:
    if not result.ok:
        err_console.print(f"[bold red]failed[/] ({result.failure.kind.value}): {result.failure.message}", highlight=False)
        raise typer.Exit(1)


from archscout.import_cli import import_cmd  # noqa: E402
from archscout.llm_cli import llm_app  # noqa: E402
from archscout.upgrade_cli import upgrade_cmd  # noqa: E402

app.command("upgrade")(upgrade_cmd)

app.command("import")(import_cmd)

app.add_typer(llm_app, name="llm")

from archscout.calibration.cli import calibrate_cmd  # noqa: E402

app.command("calibrate")(calibrate_cmd)


from archscout.recheck_cli import register as _register_recheck  # noqa: E402

_register_recheck(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
