"""The Anthropic provider: one message over the official `anthropic` SDK.

Retries on 429 (honouring retry-after), 529/5xx and timeouts are the SDK's own (`max_retries`).
Structured output is asked for in the prompt: the schema goes into the system prompt with a "JSON
only" instruction, and the client extracts and validates the reply like any other. Why not forced
tool use: it would give a second reply shape (a tool_use block) to parse and test, it cannot be
combined with extended thinking, and Anthropic-compatible proxies support it unevenly; the client's
repair round already covers the rare reply that misses the schema. (The messages API's newer
`output_config.format` JSON schema is the natural next step once proxies follow.)

Temperature is not sent: the anthropic SDK this was built on (2.x) no longer takes sampling
parameters in `messages.create`, and recent Claude models reject them; `temperature` in LLMConfig
applies to OpenAI-compatible endpoints only. Streaming is not used.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from archscout.agents.base import Completion, LLMConfig, LLMUnavailable, Usage
from archscout.agents.jsonfix import schema_instruction
from archscout.agents.openai_provider import api_key, map_sdk_error


class AnthropicProvider:
    """`Provider` over `anthropic.Anthropic`; `last_mode` is always "text" (schema in the prompt)."""

    name = "anthropic"

    def __init__(self, config: LLMConfig):
        key = api_key(config)
        try:
            import anthropic
        except ImportError as err:
            raise LLMUnavailable("install anthropic to use Claude models: pip install 'anthropic>=0.40'") from err
        self._sdk: ModuleType = anthropic
        self._client = anthropic.Anthropic(
            base_url=config.base_url, api_key=key, timeout=config.timeout_s, max_retries=config.max_retries
        )
        self.endpoint = str(self._client.base_url).rstrip("/")
        self.max_retries = config.max_retries
        self.last_mode: str | None = None

    def complete(
        self,
        *,
        system: str,
        user: str,
        model: str,
        temperature: float,
        max_tokens: int,
        schema: dict[str, Any] | None,
    ) -> Completion:
        prompt = system + schema_instruction(schema) if schema is not None else system
        try:
            response = self._client.messages.create(
                model=model,
                system=prompt,
                messages=[{"role": "user", "content": user}],
                max_tokens=max_tokens,
            )
        except self._sdk.AnthropicError as err:
            raise map_sdk_error(self._sdk, err, self.endpoint, self.max_retries) from err
        if schema is not None:
            self.last_mode = "text"
        text = "".join(block.text for block in response.content if getattr(block, "type", None) == "text")
        usage = response.usage
        return Completion(
            text=text,
            usage=Usage(tokens_in=usage.input_tokens or 0, tokens_out=usage.output_tokens or 0),
            model=response.model or model,
        )
