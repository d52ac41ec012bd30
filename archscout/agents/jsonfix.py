"""JSON in prompts and replies: ask for a schema's JSON, then find the JSON object in what came back.

Models asked for "JSON only" still wrap it: in ```json fences, after a sentence of prose, behind a
reasoning model's <think>...</think> block. `extract_json` accepts, in this order: the whole reply
as JSON, the first fenced block that parses, the first {...} object that parses. It does
not repair broken JSON (trailing commas, single quotes): the client's repair round asks the model
to, which also fixes wrong fields, and keeps the reply we validate the one the model wrote.
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)```", re.DOTALL)


class NoJSON(ValueError):
    """The reply holds no parseable JSON object."""


def extract_json(text: str) -> Any:
    """The JSON value in `text`; raises NoJSON with a one-line reason when there is none."""
    stripped = _THINK.sub("", text).strip()
    if not stripped:
        raise NoJSON("the reply is empty")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for match in _FENCE.finditer(stripped):
        try:
            return json.loads(match.group(2))
        except ValueError:
            continue
    found = first_object(stripped)
    if found is None:
        raise NoJSON("no JSON object found in the reply")
    return found


def schema_instruction(schema: dict[str, Any]) -> str:
    """The prompt text that asks for one JSON object matching `schema` and nothing else."""
    return (
        "\n\nReply with one JSON object only, no prose and no code fences, that validates against this "
        "JSON schema:\n" + json.dumps(schema, separators=(",", ":"))
    )


def first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object that starts at a `{` of `text` and parses, or None. The stdlib decoder
    finds where it ends (`raw_decode`), braces inside strings included, so prose after it is fine."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
