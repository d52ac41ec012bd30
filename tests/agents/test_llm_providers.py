"""The providers' own behaviour over real HTTP: json_schema structured output and its text fallback,
error mapping (missing key, unreachable endpoint, refused key, other API errors), and the scripted
server's queue, responder and raw bodies."""

from __future__ import annotations

import socket

import pytest
from pydantic import BaseModel

from archscout.agents.base import LLMConfig, LLMError, LLMUnavailable
from archscout.agents.client import LLMClient, make_provider
from archscout.agents.scripted import ScriptedReply, prompt_text


class Flag(BaseModel):
    ok: bool


def ask(client: LLMClient, agent: str = "check") -> Flag:
    return client.call(agent, system=f"ROLE: {agent}", user="Answer.", schema=Flag)


def test_openai_sends_json_schema_response_format(config_for, server):
    client = LLMClient(config_for("openai"))
    server.enqueue('{"ok": true}')
    assert ask(client).ok
    response_format = server.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Flag"
    assert response_format["json_schema"]["schema"]["required"] == ["ok"]
    assert client.provider.last_mode == "json_schema"


def test_openai_auto_falls_back_to_text_when_json_schema_is_rejected_and_remembers(config_for, server):
    client = LLMClient(config_for("openai", structured="auto"))
    server.enqueue("response_format type json_schema is not supported by this model", status=400)
    server.enqueue('{"ok": true}')
    server.enqueue('{"ok": false}')
    assert ask(client).ok is True
    assert ask(client).ok is False
    assert [("response_format" in r) for r in server.requests] == [True, False, False]
    assert client.provider.last_mode == "text"


def test_openai_json_schema_mode_does_not_fall_back(config_for, server):
    client = LLMClient(config_for("openai", structured="json_schema"))
    server.enqueue("response_format json_schema is not supported", status=400)
    with pytest.raises(LLMError) as err:
        ask(client)
    assert not isinstance(err.value, LLMUnavailable)
    assert "400" in str(err.value) and "json_schema" in str(err.value)
    assert len(server.requests) == 1


def test_openai_text_mode_never_sends_response_format(config_for, server):
    server.enqueue('{"ok": true}')
    ask(LLMClient(config_for("openai", structured="text")))
    assert "response_format" not in server.requests[0]


def test_anthropic_puts_the_schema_in_the_system_prompt(config_for, server):
    server.enqueue('{"ok": true}')
    ask(LLMClient(config_for("anthropic")))
    request = server.requests[0]
    assert '"required":["ok"]' in request["system"] and "JSON object only" in request["system"]
    assert request["messages"] == [{"role": "user", "content": "Answer."}]
    # the SDK decides the header (x-api-key, or a bearer token in newer versions); the key is sent
    assert any("sk-ant-test" in value for value in server.log[0].headers.values())


@pytest.mark.parametrize("provider,env", [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_missing_key_is_one_line_llmunavailable(monkeypatch, provider, env):
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(LLMUnavailable) as err:
        make_provider(LLMConfig(provider=provider))
    assert str(err.value) == f"{env} is not set: export it or set llm.api_key_env"


def test_key_env_names_the_variable(monkeypatch):
    monkeypatch.delenv("MY_VLLM_KEY", raising=False)
    with pytest.raises(LLMUnavailable, match="^MY_VLLM_KEY is not set"):
        make_provider(LLMConfig(api_key_env="MY_VLLM_KEY"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("provider,path", [("openai", "/v1"), ("anthropic", "")])
def test_unreachable_endpoint_is_llmunavailable_naming_it(keys, provider, path):
    url = f"http://127.0.0.1:{closed_port()}{path}"
    client = LLMClient(LLMConfig(provider=provider, base_url=url, max_retries=1, timeout_s=2))
    with pytest.raises(LLMUnavailable) as err:
        ask(client)
    message = str(err.value)
    assert message.startswith(f"cannot reach {url}") and "\n" not in message


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_refused_key_is_llmunavailable(config_for, server, provider):
    server.enqueue("invalid x-api-key", status=401)
    with pytest.raises(LLMUnavailable, match=r"refused the API key \(401\): invalid x-api-key"):
        ask(LLMClient(config_for(provider)))
    assert len(server.requests) == 1  # auth errors are not retried


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_other_api_errors_are_llmerror_with_the_servers_message(config_for, server, provider):
    server.enqueue("model 'nope' not found", status=404)
    with pytest.raises(LLMError) as err:
        ask(LLMClient(config_for(provider)))
    assert not isinstance(err.value, LLMUnavailable)
    assert "404" in str(err.value) and "model 'nope' not found" in str(err.value)


def test_responder_answers_by_role_when_the_queue_is_empty(config_for, server):
    def by_role(request, api):
        system, _ = prompt_text(request, api)
        if "ROLE: judge" in system:
            return ScriptedReply('{"ok": false}')
        return '{"ok": true}'

    server.responder = by_role
    client = LLMClient(config_for("openai"))
    assert ask(client, "planner").ok is True
    assert ask(client, "judge").ok is False
    server.enqueue('{"ok": false}')
    assert ask(client, "planner").ok is False  # the queue comes first


def test_empty_script_answers_500_with_a_clear_message(config_for, server):
    with pytest.raises(LLMUnavailable, match="no reply queued and no responder set"):
        ask(LLMClient(config_for("openai", max_retries=0)))


def test_raw_body_is_sent_verbatim(config_for, server):
    server.enqueue(body={"choices": [{"index": 0, "message": {"role": "assistant", "content": '{"ok": true}'},
                                      "finish_reason": "stop"}], "model": "raw", "id": "x", "object": "chat.completion",
                         "created": 0})
    client = LLMClient(config_for("openai"))
    assert ask(client).ok is True
    assert client.totals()["tokens_in"] == 0  # no usage in the body: counted as zero, not a crash
