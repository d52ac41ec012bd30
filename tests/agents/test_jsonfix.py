"""extract_json: bare JSON, fenced JSON, the first balanced object inside prose, and what is refused."""

from __future__ import annotations

import pytest

from archscout.agents.jsonfix import NoJSON, extract_json, first_object


def test_bare_json_is_parsed_whole():
    assert extract_json(' {"a": [1, 2]} \n') == {"a": [1, 2]}


def test_fenced_json_is_found_after_prose():
    text = 'Here it is:\n```json\n{"name": "x", "ok": true}\n```\nAnything else?'
    assert extract_json(text) == {"name": "x", "ok": True}


def test_first_fence_that_parses_wins_over_a_broken_one():
    text = "```python\nprint('hi')\n```\nand\n```\n{\"v\": 2}\n```"
    assert extract_json(text) == {"v": 2}


def test_object_inside_prose_with_braces_in_strings():
    text = 'I think {"code": "def f(): return {1: \'}\'}", "n": 3} is right. {"second": 1}'
    assert extract_json(text) == {"code": "def f(): return {1: '}'}", "n": 3}


def test_reasoning_block_is_ignored():
    text = '<think>maybe {"wrong": 1}?</think>\n{"right": 2}'
    assert extract_json(text) == {"right": 2}


def test_unbalanced_prefix_is_skipped_for_a_later_object():
    assert first_object('set {x, then {"a": 1}') == {"a": 1}


@pytest.mark.parametrize("text", ["", "no json here", '{"a": 1,', "{not json}"])
def test_no_json_raises_one_line(text):
    with pytest.raises(NoJSON) as err:
        extract_json(text)
    assert "\n" not in str(err.value)
