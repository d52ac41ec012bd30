"""The OpenAI-compatible provider: one chat completion over the official `openai` SDK.

It serves OpenAI itself and any server that speaks the chat-completions API (vLLM, Ollama, llama.cpp
server, LM Studio). Retries on 429 (honouring retry-after), 5xx and timeouts are the SDK's own
(`max_retries`); this module adds structured output and turns SDK errors into LLMUnavailable /
LLMError with a one-line message naming the endpoint. `map_sdk_error` also serves the Anthropic
provider, whose SDK has the same exception classes. Streaming and tool calls are not used.
"""

from __future__ import annotations

import os
import re
from types import ModuleType
from typing import Any

from archscout.agents.base import Completion, LLMConfig, LLMError, LLMUnavailable, Usage
from archscout.agents.jsonfix import schema_instruction


def api_key(config: LLMConfig) -> str:
    name = config.key_env()
    key = os.environ.get(name, "").strip()
    if not key:
        raise LLMUnavailable(f"{name} is not set: export it or set llm.api_key_env")
    return key


class OpenAIProvider:
    """`Provider` over `openai.OpenAI`. `last_mode` says how the last structured call asked for JSON:
    "json_schema" (response_format) or "text" (schema in the prompt only)."""

    name = "openai"

    def __init__(self, config: LLMConfig):
        key = api_key(config)
        try:
            import openai
        except ImportError as err:
            raise LLMUnavailable("install openai to use an OpenAI-compatible endpoint: pip install 'openai>=1.40'") from err
        self._sdk: ModuleType = openai
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=key, timeout=config.timeout_s, max_retries=config.max_retries
        )
        self.endpoint = str(self._client.base_url).rstrip("/")
        self.max_retries = config.max_retries
        self.structured = config.structured
        # Flipped once, in "auto" mode, when the endpoint refuses response_format: it will refuse again.
        self.schema_supported = config.structured != "text"
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
        use_schema = schema is not None and self.schema_supported
        # The schema goes in the prompt in every mode: it costs a few hundred tokens and helps servers
        # that accept response_format but ignore it.
        prompt = system + schema_instruction(schema) if schema is not None else system
        kwargs: dict[str, Any] = dict(
            model=model,
            messages=[{"role": "system", "content": prompt}, {"role": "user", "content": user}],
            temperature=temperature,
            max_tokens=max_tokens,
        )
        if use_schema:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(schema), "schema": schema, "strict": False},
            }
        try:
            response = self._client.chat.completions.create(**kwargs)
        except (self._sdk.BadRequestError, self._sdk.UnprocessableEntityError) as err:
            if use_schema and self.structured == "auto" and rejects_schema(err):
                self.schema_supported = False
                return self.complete(
                    system=system, user=user, model=model, temperature=temperature, max_tokens=max_tokens, schema=schema
                )
            raise map_sdk_error(self._sdk, err, self.endpoint, self.max_retries) from err
        except self._sdk.OpenAIError as err:
            raise map_sdk_error(self._sdk, err, self.endpoint, self.max_retries) from err
        if schema is not None:
            self.last_mode = "json_schema" if use_schema else "text"
        if not response.choices:
            raise LLMError(f"{self.endpoint} returned no choices for model {model}")
        message = response.choices[0].message
        text = message.content if message.content is not None else (getattr(message, "refusal", None) or "")
        usage = response.usage
        return Completion(
            text=text,
            usage=Usage(tokens_in=usage.prompt_tokens or 0, tokens_out=usage.completion_tokens or 0) if usage else Usage(),
            model=response.model or model,
        )


def schema_name(schema: dict[str, Any]) -> str:
    # OpenAI requires ^[a-zA-Z0-9_-]{1,64}$ here; a pydantic schema's title is the class name.
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "reply"))[:64]


def rejects_schema(err: Exception) -> bool:
    text = f"{getattr(err, 'message', '')} {getattr(err, 'body', '')}".lower()
    return "response_format" in text or "json_schema" in text


def map_sdk_error(sdk: ModuleType, err: Exception, endpoint: str, retries: int) -> LLMError:
    """One-line LLMUnavailable (the study cannot use this endpoint) or LLMError (this request failed)."""
    if isinstance(err, sdk.APITimeoutError):
        return LLMUnavailable(f"{endpoint} did not answer in time (after {retries} retries)")
    if isinstance(err, sdk.APIConnectionError):
        cause = err.__cause__ or err
        return LLMUnavailable(one_line(f"cannot reach {endpoint}: {cause} (after {retries} retries)"))
    if isinstance(err, (sdk.AuthenticationError, sdk.PermissionDeniedError)):
        return LLMUnavailable(one_line(f"{endpoint} refused the API key ({err.status_code}): {error_message(err)}"))
    if isinstance(err, sdk.APIStatusError):
        status = err.status_code
        if status in (408, 409, 429) or status >= 500:
            return LLMUnavailable(
                one_line(f"{endpoint} still answered {status} after {retries} retries: {error_message(err)}")
            )
        return LLMError(one_line(f"{endpoint} answered {status}: {error_message(err)}"))
    return LLMError(one_line(f"{endpoint}: {type(err).__name__}: {err}"))


def error_message(err: Exception) -> str:
    """The server's own message from an SDK status error (its `error.message`), else the SDK's text."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(err, "message", err))


def one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
