"""LLMClient over the real OpenAI and Anthropic SDKs, talking HTTP to the ScriptedServer: structured
replies, JSON found in prose, the repair round, the SDKs' retries (429 with retry-after, 500,
timeouts), budgets, and the ledger in a real SQLite study database."""

from __future__ import annotations

import threading
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


def _ceiling(client: LLMClient) -> int:
    """One `ask`'s worst case in tokens: what the client reserves before sending it."""
    return sum(client.worst_case("planner", SYSTEM, "Go.", Idea.model_json_schema()))


@PROVIDERS
def test_token_budget_is_never_exceeded(config_for, server, provider, tmp_path):
    db = open_study_db(tmp_path)
    ceiling = _ceiling(LLMClient(config_for(provider, max_tokens=50)))
    # a budget below one call's worst case: refused before any request
    with pytest.raises(BudgetExhausted) as err:
        ask(LLMClient(config_for(provider, max_tokens=50, budget_tokens=ceiling - 1), ledger=db.ledger))
    assert server.requests == [] and db.ledger.calls() == []
    assert "\n" not in str(err.value) and f"of {ceiling - 1:,} tokens" in str(err.value)
    # exactly one worst case: the first call goes; the second could cross the line, so it does not
    client = LLMClient(config_for(provider, max_tokens=50, budget_tokens=ceiling), ledger=db.ledger)
    server.enqueue(VALID)
    server.enqueue(VALID)
    ask(client)
    with pytest.raises(BudgetExhausted, match="of .* tokens spent or reserved"):
        ask(client)
    assert len(server.requests) == 1
    [call] = db.ledger.calls()
    # the reservation was settled with the real usage
    assert call.outcome == "ok" and 0 < call.tokens_in + call.tokens_out <= ceiling
    assert db.ledger.totals(reserved=True) == db.ledger.totals()
    db.close()


def test_dollar_budget_counts_a_fresh_client_on_the_same_ledger(config_for, server, tmp_path):
    db = open_study_db(tmp_path)
    prices = {"test-model": Price(input=1.0, output=1.0)}  # $1 per million tokens
    ceiling = _ceiling(LLMClient(config_for("openai", max_tokens=50)))
    config = config_for("openai", max_tokens=50, budget_usd=ceiling / 1e6, prices=prices)
    server.enqueue(VALID)
    ask(LLMClient(config, ledger=db.ledger))
    # A resumed study builds a new client; the spend comes from the database, not from memory.
    with pytest.raises(BudgetExhausted, match=r"dollar budget"):
        ask(LLMClient(config, ledger=db.ledger))
    assert len(server.requests) == 1
    db.close()


def test_budget_without_a_ledger_uses_in_memory_totals(config_for, server):
    ceiling = _ceiling(LLMClient(config_for("openai", max_tokens=50)))
    client = LLMClient(config_for("openai", max_tokens=50, budget_tokens=ceiling))
    server.enqueue(VALID)
    ask(client)
    with pytest.raises(BudgetExhausted):
        ask(client)
    assert len(server.requests) == 1
    assert 0 < client.totals()["tokens_in"] + client.totals()["tokens_out"] <= ceiling


def test_concurrent_callers_never_exceed_the_budget(config_for, server, tmp_path):
    """Eight threads (experiments in flight) on one study's ledger, a budget of three worst cases,
    replies that take seconds: three requests are in flight at once, the other five are refused
    (without reservations all eight would have found nothing spent and gone), and the spend stays
    within the budget."""
    db = open_study_db(tmp_path)
    ceiling = _ceiling(LLMClient(config_for("openai", max_tokens=50)))
    config = config_for("openai", max_tokens=50, budget_tokens=3 * ceiling)
    for _ in range(8):
        server.enqueue(VALID, delay_s=3.0)  # (under the 5 s timeout) every reservation is taken before the first settles
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def one() -> None:
        client = LLMClient(config, ledger=db.ledger)  # one per thread, as separate drivers would
        barrier.wait()
        try:
            ask(client)
            outcomes.append("ok")
        except BudgetExhausted:
            outcomes.append("refused")

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = len(server.requests)
    assert sent == 3 and outcomes.count("ok") == 3 and outcomes.count("refused") == 5
    spent = db.ledger.totals()
    assert spent["calls"] == sent and spent["tokens_in"] + spent["tokens_out"] <= 3 * ceiling
    db.close()


def test_per_agent_settings_reach_the_request(config_for, server):
    config = config_for("openai", agents={"planner": {"model": "big-model", "temperature": 0.1, "max_tokens": 321}})
    server.enqueue(VALID)
    ask(LLMClient(config))
    request = server.requests[0]
    assert (request["model"], request["temperature"], request["max_tokens"]) == ("big-model", 0.1, 321)
