"""`archscout llm ...`: check that the configured LLM endpoint works before a study spends on it.

`archscout llm check` builds the LLMConfig from the study's `study.toml` `[llm]` table (when the
study exists) overlaid with the flags, makes one tiny structured call and prints what worked:
endpoint, model, structured-output mode, latency and tokens. It does not open the study database
(the call is not written to the study's ledger) and does not try every agent's model, only the one
the `check` agent would use.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Optional

import typer
from pydantic import BaseModel, ValidationError

from archscout.agents.base import LLMConfig, LLMError

llm_app = typer.Typer(no_args_is_help=True, help="Check and inspect the LLM endpoint a study uses.")

CHECK_SYSTEM = "ROLE: check\nYou are answering a connectivity check for archscout."
CHECK_USER = 'Reply with the JSON object {"ok": true}.'


class CheckReply(BaseModel):
    ok: bool


def study_llm_config(study: Path | None) -> dict:
    """The `[llm]` table of `study/study.toml`, or {} when there is no study there."""
    from archscout.study import CONFIG_NAME

    if study is None or not (study / CONFIG_NAME).is_file():
        return {}
    path = study / CONFIG_NAME
    try:
        table = tomllib.loads(path.read_text()).get("llm", {})
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from err
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [llm] must be a table")
    return table


@llm_app.command("check")
def check(
    study: Optional[Path] = typer.Option(None, "--study", help="study folder whose [llm] settings to use"),
    provider: Optional[str] = typer.Option(None, "--provider", help="openai (any OpenAI-compatible endpoint) | anthropic"),
    model: Optional[str] = typer.Option(None, "--model", help="model name, e.g. gpt-4o-mini"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="endpoint, e.g. http://127.0.0.1:8000/v1 for vLLM"),
    key_env: Optional[str] = typer.Option(None, "--key-env", help="environment variable holding the API key"),
) -> None:
    """Make one tiny structured call and report endpoint, model, structured-output mode, latency, tokens."""
    from archscout.ui import console, fail
    from archscout.agents.client import LLMClient

    flags = {"provider": provider, "model": model, "base_url": base_url, "api_key_env": key_env}
    try:
        settings = study_llm_config(study) | {k: v for k, v in flags.items() if v is not None}
        config = LLMConfig.model_validate(settings)
    except ValidationError as err:
        first = err.errors()[0]
        fail(f"llm.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    except ValueError as err:
        fail(str(err))
    agent_model = config.settings_for("check")[0]
    try:
        client = LLMClient(config)
        endpoint = getattr(client.provider, "endpoint", config.base_url or "default endpoint")
        started = time.perf_counter()
        reply = client.call("check", system=CHECK_SYSTEM, user=CHECK_USER, schema=CheckReply)
        latency = time.perf_counter() - started
    except LLMError as err:
        fail(f"{config.provider} model {agent_model}: {err}")
    totals = client.totals()
    mode = getattr(client.provider, "last_mode", None) or "text"
    if mode == "json_schema":
        mode_note = "json_schema (response_format)"
    elif getattr(client.provider, "schema_supported", True) is False and config.structured == "auto":
        mode_note = "text fallback: the endpoint refused json_schema; the schema goes in the prompt"
    else:
        mode_note = "text (schema in the prompt)"
    rows = [
        ("provider", config.provider),
        ("endpoint", endpoint),
        ("model", agent_model),
        ("reachable", "yes" + ("" if reply.ok else " (but the model answered ok=false)")),
        ("structured output", mode_note),
        ("latency", f"{latency:.2f} s"),
        ("tokens", f"{int(totals['tokens_in'])} in, {int(totals['tokens_out'])} out in {int(totals['calls'])} call(s)"),
    ]
    for name, value in rows:
        console.print(f"{name:<18} {value}", highlight=False, soft_wrap=True)
