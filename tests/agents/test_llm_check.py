"""`archscout llm check` through the real Typer app against the ScriptedServer: what it prints when the
endpoint works, the study's [llm] table overlaid with flags, and one-line failures with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from archscout.cli import app

runner = CliRunner()


def test_check_reports_endpoint_model_mode_latency_and_tokens(server, keys):
    server.enqueue('{"ok": true}')
    result = runner.invoke(app, ["llm", "check", "--base-url", server.openai_base_url, "--model", "tiny-model"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert server.openai_base_url in out and "tiny-model" in out
    assert "reachable" in out and "yes" in out
    assert "json_schema" in out and "latency" in out and "tokens" in out
    assert server.requests[0]["model"] == "tiny-model"
    assert "ROLE: check" in server.requests[0]["messages"][0]["content"]


def test_check_reports_the_text_fallback(server, keys):
    server.enqueue("unknown field response_format", status=400)
    server.enqueue('{"ok": true}')
    result = runner.invoke(app, ["llm", "check", "--base-url", server.openai_base_url])
    assert result.exit_code == 0, result.output
    assert "text fallback: the endpoint refused json_schema" in result.output


def test_check_reads_the_study_llm_table_and_flags_override_it(server, keys, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_KEY", "sk-study")
    (tmp_path / "study.toml").write_text(
        "[llm]\n"
        'provider = "anthropic"\n'
        f"base_url = {json.dumps(server.anthropic_base_url)}\n"
        'api_key_env = "STUDY_KEY"\n'
        'model = "from-study"\n'
    )
    server.enqueue('{"ok": true}')
    result = runner.invoke(app, ["llm", "check", "--study", str(tmp_path), "--model", "from-flag"])
    assert result.exit_code == 0, result.output
    assert server.log[0].api == "anthropic" and server.requests[0]["model"] == "from-flag"
    assert any("sk-study" in v for v in server.log[0].headers.values())


def test_check_without_a_key_fails_in_one_line_with_exit_2(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.invoke(app, ["llm", "check", "--base-url", server.openai_base_url])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "OPENAI_API_KEY is not set" in lines[0]
    assert server.requests == []


def test_check_with_a_bad_study_setting_fails_in_one_line(tmp_path, keys):
    (tmp_path / "study.toml").write_text('[llm]\nprovider = "gemini"\n')
    result = runner.invoke(app, ["llm", "check", "--study", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: llm.provider:") and len(result.output.strip().splitlines()) == 1
