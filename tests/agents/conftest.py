"""Fixtures: a running ScriptedServer, test API keys in the environment, and an LLMConfig pointed at
the server for either provider, with timeouts and retries small enough to keep the tests quick."""

from __future__ import annotations

import pytest

from archscout.agents.base import LLMConfig
from archscout.agents.scripted import ScriptedServer


@pytest.fixture
def server():
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.fixture
def config_for(server, keys):
    def make(provider: str = "openai", **fields) -> LLMConfig:
        url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
        defaults = dict(provider=provider, base_url=url, model="test-model", timeout_s=5.0, max_retries=2)
        return LLMConfig(**(defaults | fields))

    return make
