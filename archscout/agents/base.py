"""The LLM seam: configuration, the provider interface and the errors every agent can meet.

Agents never talk to an SDK. They call `LLMClient.call(agent, system=..., user=..., schema=Model)`
(client.py) and get back a validated pydantic object; the client picks the agent's model and
sampling settings from `LLMConfig`, asks a `Provider` for one completion, extracts and validates
JSON (with one repair round), records every call in the study's ledger and enforces the budgets.
A `Provider` (openai_provider.py, anthropic_provider.py) turns one request into one `Completion`
over an official SDK, with the SDK's own retries on 429/5xx/timeouts.

This module holds the shared types only; no network code.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

AGENTS = ("planner", "novelty", "diversifier", "reviewer", "debugger", "analyst", "summarizer", "judge", "check")


class AgentSettings(BaseModel):
    """Per-agent overrides; unset fields fall back to the LLMConfig defaults."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


class Price(BaseModel):
    """Dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMConfig(BaseModel):
    """`[llm]` in study.toml: which endpoint, which models, what it may cost."""

    model_config = ConfigDict(extra="forbid")
    provider: Literal["openai", "anthropic"] = "openai"  # openai = any OpenAI-compatible endpoint
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1 for vLLM, Ollama, llama.cpp server
    api_key_env: str | None = None  # None = OPENAI_API_KEY / ANTHROPIC_API_KEY by provider
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)  # SDK retries on 429 (honouring retry-after), 5xx, timeouts
    structured: Literal["auto", "json_schema", "text"] = "auto"  # auto: JSON schema, text on refusal
    temperature: float = 0.7
    max_tokens: int = Field(8192, ge=1)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)  # keyed by AGENTS
    prices: dict[str, Price] = Field(default_factory=dict)  # keyed by model name
    budget_tokens: int | None = Field(None, ge=1)  # tokens in + out over the whole study
    budget_usd: float | None = Field(None, gt=0)
    debug_attempts: int = Field(3, ge=0)  # debugger rounds after a failed training run
    probe_attempts: int = Field(2, ge=0)  # planner rounds after a probe failure
    diversify_attempts: int = Field(2, ge=0)  # diversifier rounds after "repeated"
    review: bool = True  # run the code reviewer on every proposal
    cognition_k: int = Field(3, ge=0)  # cognition entries retrieved per analysis

    def key_env(self) -> str:
        if self.api_key_env:
            return self.api_key_env
        return "ANTHROPIC_API_KEY" if self.provider == "anthropic" else "OPENAI_API_KEY"

    def settings_for(self, agent: str) -> tuple[str, float, int]:
        """(model, temperature, max_tokens) for one agent."""
        own = self.agents.get(agent, AgentSettings())
        return (
            own.model or self.model,
            self.temperature if own.temperature is None else own.temperature,
            own.max_tokens or self.max_tokens,
        )

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float | None:
        price = self.prices.get(model)
        if price is None:
            return None
        return (tokens_in * price.input + tokens_out * price.output) / 1e6


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0


class Completion(BaseModel):
    text: str
    usage: Usage
    model: str  # as reported by the endpoint


class Provider(Protocol):
    name: str  # "openai" | "anthropic"

    def complete(
        self,
        *,
        system: str,
        user: str,
        model: str,
        temperature: float,
        max_tokens: int,
        schema: dict[str, Any] | None,  # JSON schema to enforce when the endpoint supports it
    ) -> Completion: ...


class LLMError(Exception):
    """Base of every LLM failure an agent or the loop may catch."""


class LLMUnavailable(LLMError):
    """No key, endpoint unreachable, auth refused, retries exhausted: the study cannot use the LLM."""


class LLMInvalid(LLMError):
    """The reply never validated against the schema, even after the repair round."""


class BudgetExhausted(LLMError):
    """The study's token or dollar budget is spent; the loop stops cleanly."""


class Repeated(LLMError):
    """The novelty judge called every diversified idea a repeat of earlier work."""
