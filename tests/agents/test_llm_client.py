"""LLMClient over the real OpenAI and Anthropic SDKs, talking HTTP to the ScriptedServer: structured
replies, JSON found in prose, the repair round, the SDKs' retries (429 with retry-after, 500,
timeouts), budgets, and the ledger in a real SQLite study database."""

from __future__ import annotations

import time

import pytest
from pydantic import BaseModel

from archscout.agents.base import BudgetExhausted, LLMInvalid, LLMUnavailable, Price
from archscout.agents.client import LLMClient
from archscout.agents.scripted import prompt_text
from archscout.store.db import open_study_db


class Idea(BaseModel):
    name: str
    score: int


SYSTEM = "ROLE: planner\nPropose one idea."
VALID = '{"name": "gated delta", "score": 7}'

PROVIDERS = pytest.mark.parametrize("provider", ["openai", "anthropic"])


def ask(client: LLMClient, **ids) -> Idea:
    return client.call("planner", system=SYSTEM, user="Go.", schema=Idea, **ids)


@PROVIDERS
def test_structured_reply_is_validated_and_counted(config_for, server, provider):
    client = LLMClient(config_for(provider))
    server.enqueue(VALID)
    assert ask(client) == Idea(name="gated delta", score=7)
    system, user = prompt_text(server.requests[0], provider)
    assert "ROLE: planner" in system and '"score"' in system  # the schema travels in the prompt
    assert user == "Go."
    totals = client.totals()
    assert totals["calls"] == 1 and totals["tokens_in"] > 0 and totals["tokens_out"] > 0


@PROVIDERS
@pytest.mark.parametrize(
    "reply",
    [f"Sure! Here is my idea: {VALID} Hope it helps.", f"```json\n{VALID}\n```", f"Idea:\n```\n{VALID}\n```\n"],
    ids=["prose", "json-fence", "bare-fence"],
)
def test_json_wrapped_in_prose_or_fences_is_extracted(config_for, server, provider, reply):
    server.enqueue(reply)
    assert ask(LLMClient(config_for(provider))).score == 7


@PROVIDERS
def test_invalid_reply_is_repaired_once_and_both_calls_are_in_the_ledger(config_for, server, provider, tmp_path):
    db = open_study_db(tmp_path)
    exp = db.experiments.start(proposer="llm")
    client = LLMClient(config_for(provider, prices={"test-model": Price(input=1.0, output=2.0)}), ledger=db.ledger)
    server.enqueue('{"name": "gated delta", "score": "high"}')
    server.enqueue(VALID)
    assert ask(client, experiment_id=exp.id).score == 7

    assert len(server.requests) == 2
    _, repair_user = prompt_text(server.requests[1], provider)
    assert '"score": "high"' in repair_user  # the model sees its own reply
    assert "score:" in repair_user and "integer" in repair_user  # and the validation error
    calls = db.ledger.calls(experiment_id=exp.id)
    assert [c.outcome for c in calls] == ["invalid", "repaired"]
    assert calls[0].error.startswith("score:")
    assert all(c.agent == "planner" and c.provider == provider and c.model == "test-model" for c in calls)
    assert calls[0].prompt == {"system": SYSTEM, "user": "Go."}
    assert calls[1].response == VALID
    assert all(c.tokens_in > 0 and c.cost_usd > 0 and c.latency_s > 0 for c in calls)
    assert client.totals()["calls"] == 2
    db.close()


@PROVIDERS
def test_reply_that_never_validates_raises_llminvalid(config_for, server, provider, tmp_path):
    db = open_study_db(tmp_path)
    client = LLMClient(config_for(provider), ledger=db.ledger)
    server.enqueue("I would rather not.")
    server.enqueue('{"name": "still no score"}')
    with pytest.raises(LLMInvalid) as err:
        ask(client)
    message = str(err.value)
    assert "\n" not in message and "planner" in message and "score" in message
    assert [c.outcome for c in db.ledger.calls()] == ["invalid", "invalid"]
    assert len(server.requests) == 2  # exactly one repair
    db.close()


@PROVIDERS
def test_rate_limit_with_retry_after_is_retried_by_the_sdk(config_for, server, provider):
    server.enqueue("slow down", status=429, headers={"retry-after": "0.3"})
    server.enqueue(VALID)
    started = time.perf_counter()
    assert ask(LLMClient(config_for(provider))).score == 7
    assert time.perf_counter() - started >= 0.3
    assert len(server.requests) == 2


@PROVIDERS
def test_server_error_is_retried_by_the_sdk(config_for, server, provider):
    server.enqueue(status=500)
    server.enqueue(VALID)
    assert ask(LLMClient(config_for(provider))).score == 7
    assert len(server.requests) == 2


@PROVIDERS
def test_timeout_is_retried_by_the_sdk(config_for, server, provider):
    server.enqueue(VALID, delay_s=1.0)
    server.enqueue(VALID)
    assert ask(LLMClient(config_for(provider, timeout_s=0.3))).score == 7
    assert len(server.requests) == 2


@PROVIDERS
def test_retries_exhausted_raise_llmunavailable_and_are_recorded(config_for, server, provider, tmp_path):
    db = open_study_db(tmp_path)
    client = LLMClient(config_for(provider, max_retries=1), ledger=db.ledger)
    for _ in range(2):
        server.enqueue("busy", status=429, headers={"retry-after": "0.05"})
    with pytest.raises(LLMUnavailable) as err:
        ask(client)
    assert "429" in str(err.value) and "127.0.0.1" in str(err.value)
    [call] = db.ledger.calls()
    assert call.outcome == "error" and call.response is None and "429" in call.error
    db.close()


@PROVIDERS
def test_token_budget_stops_before_any_request(config_for, server, provider, tmp_path):
    db = open_study_db(tmp_path)
    client = LLMClient(config_for(provider, budget_tokens=10), ledger=db.ledger)
    server.enqueue(VALID)
    server.enqueue(VALID)
    ask(client)  # allowed: nothing spent yet; it crosses the budget
    with pytest.raises(BudgetExhausted) as err:
        ask(client)
    assert len(server.requests) == 1
    assert "\n" not in str(err.value) and "of 10 tokens" in str(err.value)
    assert len(db.ledger.calls()) == 1
    db.close()


def test_dollar_budget_counts_a_fresh_client_on_the_same_ledger(config_for, server, tmp_path):
    db = open_study_db(tmp_path)
    config = config_for("openai", budget_usd=1e-6, prices={"test-model": Price(input=1.0, output=1.0)})
    server.enqueue(VALID)
    ask(LLMClient(config, ledger=db.ledger))
    # A resumed study builds a new client; the spend comes from the database, not from memory.
    with pytest.raises(BudgetExhausted, match=r"dollar budget"):
        ask(LLMClient(config, ledger=db.ledger))
    assert len(server.requests) == 1
    db.close()


def test_budget_without_a_ledger_uses_in_memory_totals(config_for, server):
    client = LLMClient(config_for("openai", budget_tokens=10))
    server.enqueue(VALID)
    ask(client)
    with pytest.raises(BudgetExhausted):
        ask(client)
    assert len(server.requests) == 1


def test_per_agent_settings_reach_the_request(config_for, server):
    config = config_for("openai", agents={"planner": {"model": "big-model", "temperature": 0.1, "max_tokens": 321}})
    server.enqueue(VALID)
    ask(LLMClient(config))
    request = server.requests[0]
    assert (request["model"], request["temperature"], request["max_tokens"]) == ("big-model", 0.1, 321)
