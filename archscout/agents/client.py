"""The structured-call client every agent uses: budgets, per-agent settings, JSON validation, one repair, ledger.

`LLMClient.call(agent, system=..., user=..., schema=Model)` checks the study's token and dollar
budgets, picks the agent's model and sampling settings, asks the provider for one completion with
the model's JSON schema, extracts and validates the JSON, and on a reply that does not validate makes
exactly one repair call that shows the model its own reply and the error. Every request, whatever
its outcome, is one ledger row. Budgets are checked before each request (a repair included), so a
study never sends a request once it has spent its budget; the request that crosses the line is
allowed to finish, so spend may exceed the budget by one reply.

It does not retry transport failures (the SDKs do, see the providers), write prompts (templates in
agents/prompts/) or decide what an agent does with a failure (LLMError and subclasses reach it).
"""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from archscout.agents.base import (
    BudgetExhausted,
    Completion,
    LLMConfig,
    LLMError,
    LLMInvalid,
    Provider,
)
from archscout.agents.jsonfix import NoJSON, extract_json

T = TypeVar("T", bound=BaseModel)


def make_provider(config: LLMConfig) -> Provider:
    """The provider named by `config.provider`; raises LLMUnavailable (missing key, missing SDK)."""
    if config.provider == "anthropic":
        from archscout.agents.anthropic_provider import AnthropicProvider

        return AnthropicProvider(config)
    from archscout.agents.openai_provider import OpenAIProvider

    return OpenAIProvider(config)


class LLMClient:
    """One per study. `ledger` is the study DB's `Ledger`; without one, totals are kept in memory."""

    def __init__(self, config: LLMConfig, ledger=None, provider: Provider | None = None):
        self.config = config
        self.ledger = ledger
        self.provider = provider if provider is not None else make_provider(config)
        self._lock = threading.Lock()
        self._totals: dict[str, float] = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}

    def totals(self) -> dict[str, float]:
        """calls, tokens_in, tokens_out, cost_usd (priced calls only) spent by the study so far."""
        if self.ledger is not None:
            return self.ledger.totals()
        with self._lock:
            return dict(self._totals)

    def call(
        self,
        agent: str,
        *,
        system: str,
        user: str,
        schema: type[T],
        experiment_id: int | None = None,
        architecture_id: int | None = None,
    ) -> T:
        """One validated `schema` instance from the agent's model; raises BudgetExhausted, LLMUnavailable,
        LLMInvalid or LLMError."""
        model, temperature, max_tokens = self.config.settings_for(agent)
        json_schema = schema.model_json_schema()
        ids = dict(experiment_id=experiment_id, architecture_id=architecture_id)

        def request(prompt_user: str) -> tuple[Completion, float]:
            self.check_budget()
            started = time.perf_counter()
            try:
                completion = self.provider.complete(
                    system=system, user=prompt_user, model=model, temperature=temperature,
                    max_tokens=max_tokens, schema=json_schema,
                )
            except LLMError as err:
                self._record(agent, model, system, prompt_user, None, 0, 0, time.perf_counter() - started,
                             "error", str(err), ids)
                raise
            return completion, time.perf_counter() - started

        completion, latency = request(user)
        result, problem = validate(completion.text, schema)
        if result is not None:
            self._record_completion(agent, model, system, user, completion, latency, "ok", None, ids)
            return result
        self._record_completion(agent, model, system, user, completion, latency, "invalid", problem, ids)

        repair_user = repair_prompt(user, completion.text, problem)
        completion, latency = request(repair_user)
        result, repair_problem = validate(completion.text, schema)
        if result is not None:
            self._record_completion(agent, model, system, repair_user, completion, latency, "repaired", None, ids)
            return result
        self._record_completion(agent, model, system, repair_user, completion, latency, "invalid", repair_problem, ids)
        raise LLMInvalid(f"{agent}: the reply did not validate as {schema.__name__} after one repair: {repair_problem}")

    def check_budget(self) -> None:
        budget_tokens, budget_usd = self.config.budget_tokens, self.config.budget_usd
        if budget_tokens is None and budget_usd is None:
            return
        spent = self.totals()
        tokens = int(spent["tokens_in"] + spent["tokens_out"])
        if budget_tokens is not None and tokens >= budget_tokens:
            raise BudgetExhausted(
                f"LLM token budget spent: {tokens:,} of {budget_tokens:,} tokens (raise llm.budget_tokens to continue)"
            )
        if budget_usd is not None and spent["cost_usd"] >= budget_usd:
            raise BudgetExhausted(
                f"LLM dollar budget spent: ${spent['cost_usd']:.4f} of ${budget_usd:.2f} (raise llm.budget_usd to continue)"
            )

    def _record_completion(
        self, agent: str, model: str, system: str, user: str, completion: Completion, latency: float,
        outcome: str, error: str | None, ids: dict[str, Any],
    ) -> None:
        self._record(agent, model, system, user, completion.text, completion.usage.tokens_in,
                     completion.usage.tokens_out, latency, outcome, error, ids)

    def _record(
        self, agent: str, model: str, system: str, user: str, response: str | None, tokens_in: int,
        tokens_out: int, latency: float, outcome: str, error: str | None, ids: dict[str, Any],
    ) -> None:
        # The configured model name, not the endpoint's (e.g. a dated snapshot): prices are keyed by it.
        cost = self.config.cost(model, tokens_in, tokens_out)
        if self.ledger is not None:
            self.ledger.add(
                agent=agent, provider=self.provider.name, model=model, prompt={"system": system, "user": user},
                response=response, tokens_in=tokens_in, tokens_out=tokens_out, latency_s=latency,
                cost_usd=cost, outcome=outcome, error=error, **ids,
            )
            return
        with self._lock:
            self._totals["calls"] += 1
            self._totals["tokens_in"] += tokens_in
            self._totals["tokens_out"] += tokens_out
            self._totals["cost_usd"] += cost or 0.0


def validate(text: str, schema: type[T]) -> tuple[T | None, str | None]:
    """(instance, None) or (None, a one-line description of the first problem)."""
    try:
        value = extract_json(text)
    except NoJSON as err:
        return None, str(err)
    try:
        return schema.model_validate(value), None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        return None, f"{where}: {first['msg']}{more}"


def repair_prompt(user: str, reply: str, problem: str) -> str:
    # The provider interface is one system + one user message, so the conversation so far is replayed
    # in the user message: the task, the model's own reply, and what was wrong with it.
    return (
        f"{user}\n\n"
        f"Your previous reply was:\n<reply>\n{reply}\n</reply>\n\n"
        f"It is not valid: {problem}\n"
        "Reply again with the corrected JSON object only: no prose, no code fences."
    )
