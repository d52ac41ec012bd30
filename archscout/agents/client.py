"""The structured-call client every agent uses: budgets, per-agent settings, JSON validation, one repair, ledger.

`LLMClient.call(agent, system=..., user=..., schema=Model)` checks the study's token and dollar
budgets, picks the agent's model and sampling settings, asks the provider for one completion with
the model's JSON schema, extracts and validates the JSON, and on a reply that does not validate makes
exactly one repair call that shows the model its own reply and the error. Every request, whatever
its outcome, is one ledger row. Budgets are never exceeded, however many experiments call at once:
each request (a repair included) first reserves its worst case in the ledger (store/ledger.py:
every byte of the system prompt, the user prompt and the JSON schema counted as a token, plus a
margin for the chat format, plus the agent's max_tokens out), and is not sent when that does not fit
beside the spend and the other reservations; its real usage settles the reservation after. A budget
smaller than one call's worst case therefore allows no call. (Byte-level tokenizers never produce
more tokens than bytes.)

It does not retry transport failures (the SDKs do, see the providers), write prompts (templates in
agents/prompts/) or decide what an agent does with a failure (LLMError and subclasses reach it).
"""

from __future__ import annotations

import itertools
import json
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
# tokens a request may add around its prompts (roles, the chat template, the schema's wrapping)
FORMAT_TOKENS = 256


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
        # without a ledger: the worst cases of the calls in flight, and each one's by key
        self._reserved: dict[str, float] = dict.fromkeys(self._totals, 0)
        self._pending: dict[int, dict[str, float]] = {}
        self._keys = itertools.count(1)

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


        def request(prompt_user: str) -> tuple[Completion, float, int]:
            ceiling_in, ceiling_out = self.worst_case(agent, system, prompt_user, json_schema)
            reservation = self._reserve(agent, model, system, prompt_user, ceiling_in, ceiling_out, ids)
            started = time.perf_counter()
            try:
                completion = self.provider.complete(
                    system=system, user=prompt_user, model=model, temperature=temperature,
                    max_tokens=max_tokens, schema=json_schema,
                )
            except LLMError as err:
                self._settle(reservation, agent, model, None, 0, 0, time.perf_counter() - started, "error", str(err))
                raise
            return completion, time.perf_counter() - started, reservation

        def settle(reserved: tuple[Completion, float, int], outcome: str, problem: str | None) -> None:
            completion, latency, reservation = reserved
            self._settle(reservation, agent, model, completion.text, completion.usage.tokens_in,
                         completion.usage.tokens_out, latency, outcome, problem)

        first = request(user)
        result, problem = validate(first[0].text, schema)
        if result is not None:
            settle(first, "ok", None)
            return result
        settle(first, "invalid", problem)

        repair_user = repair_prompt(user, first[0].text, problem)
        second = request(repair_user)
        result, repair_problem = validate(second[0].text, schema)
        if result is not None:
            settle(second, "repaired", None)
            return result
        settle(second, "invalid", repair_problem)
        raise LLMInvalid(f"{agent}: the reply did not validate as {schema.__name__} after one repair: {repair_problem}")

    def worst_case(self, agent: str, system: str, user: str, json_schema: dict) -> tuple[int, int]:
        """The most tokens one request can use, (in, out): every byte of its prompts and schema a
        token plus FORMAT_TOKENS, and the agent's max_tokens. What a reservation holds."""
        sent = len(system.encode()) + len(user.encode()) + len(json.dumps(json_schema).encode())
        return sent + FORMAT_TOKENS, self.config.settings_for(agent)[2]

    def check_budget(self) -> None:
        """Raise BudgetExhausted when a budget is spent (reservations of calls in flight included)."""
        budget_tokens, budget_usd = self.config.budget_tokens, self.config.budget_usd
        if budget_tokens is None and budget_usd is None:
            return
        spent = self._held()
        tokens = int(spent["tokens_in"] + spent["tokens_out"])
        if budget_tokens is not None and tokens >= budget_tokens:
            raise BudgetExhausted(
                f"LLM token budget spent: {tokens:,} of {budget_tokens:,} tokens (raise llm.budget_tokens to continue)"
            )
        if budget_usd is not None and spent["cost_usd"] >= budget_usd:
            raise BudgetExhausted(
                f"LLM dollar budget spent: ${spent['cost_usd']:.4f} of ${budget_usd:.2f} (raise llm.budget_usd to continue)"
            )

    def _held(self) -> dict[str, float]:
        if self.ledger is not None:
            return self.ledger.totals(reserved=True)
        with self._lock:
            return {k: self._totals[k] + self._reserved[k] for k in self._totals}

    def _reserve(self, agent: str, model: str, system: str, user: str, tokens_in: int, tokens_out: int,
                 ids: dict[str, Any]) -> int:
        """Reserve one request's worst case, or raise BudgetExhausted without sending it. Returns
        the reservation to settle (a ledger row; without a ledger, a key of the in-memory ones)."""
        budget_tokens, budget_usd = self.config.budget_tokens, self.config.budget_usd
        cost = self.config.cost(model, tokens_in, tokens_out)
        if self.ledger is not None:
            key, held = self.ledger.reserve(
                agent=agent, provider=self.provider.name, model=model, prompt={"system": system, "user": user},
                tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost, budget_tokens=budget_tokens,
                budget_usd=budget_usd, **ids,
            )
        else:
            with self._lock:
                held = {k: self._totals[k] + self._reserved[k] for k in self._totals}
                key = None
                if fits(held, tokens_in + tokens_out, cost, budget_tokens, budget_usd):
                    key = next(self._keys)
                    self._pending[key] = {"calls": 1, "tokens_in": tokens_in, "tokens_out": tokens_out,
                                          "cost_usd": cost or 0.0}
                    for k, v in self._pending[key].items():
                        self._reserved[k] += v
        if key is not None:
            return key
        tokens = int(held["tokens_in"] + held["tokens_out"])
        if not fits(held, tokens_in + tokens_out, None, budget_tokens, None):
            raise BudgetExhausted(
                f"LLM token budget: {tokens:,} of {budget_tokens:,} tokens spent or reserved, and the next call may "
                f"use up to {tokens_in + tokens_out:,} (prompt and max_tokens; raise llm.budget_tokens to continue)"
            )
        raise BudgetExhausted(
            f"LLM dollar budget: ${held['cost_usd']:.4f} of ${budget_usd:.2f} spent or reserved, and the next call "
            f"may cost up to ${cost:.4f} (raise llm.budget_usd to continue)"
        )

    def _settle(self, reservation: int, agent: str, model: str, response: str | None, tokens_in: int,
                tokens_out: int, latency: float, outcome: str, error: str | None) -> None:
        # The configured model name, not the endpoint's (e.g. a dated snapshot): prices are keyed by it.
        cost = self.config.cost(model, tokens_in, tokens_out)
        if self.ledger is not None:
            self.ledger.settle(reservation, response=response, tokens_in=tokens_in, tokens_out=tokens_out,
                               latency_s=latency, cost_usd=cost, outcome=outcome, error=error)
            return
        with self._lock:
            for k, v in self._pending.pop(reservation).items():
                self._reserved[k] -= v
            self._totals["calls"] += 1
            self._totals["tokens_in"] += tokens_in
            self._totals["tokens_out"] += tokens_out
            self._totals["cost_usd"] += cost or 0.0


def fits(held: dict[str, float], tokens: int, cost: float | None, budget_tokens: int | None,
         budget_usd: float | None) -> bool:
    """Whether a call of at most `tokens` and `cost` fits in the budgets beside `held`."""
    if budget_tokens is not None and held["tokens_in"] + held["tokens_out"] + tokens > budget_tokens:
        return False
    return budget_usd is None or cost is None or held["cost_usd"] + cost <= budget_usd


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
