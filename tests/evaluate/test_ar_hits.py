"""The associative-recall-hit mask (evaluate/tasks/lm.py `ar_hit_mask`) and the parent's split of
the LM loss into hits and other tokens (evaluate/scoring.py `LossSplit`), on hand-made sequences
whose answers are worked out by hand; and the split as the scoring driver writes it into a run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archscout.evaluate.scoring import LossSplit
from archscout.evaluate.tasks import IGNORE
from archscout.evaluate.tasks.lm import ar_hit_mask


def windows(stream: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One LM window: inputs and next-token targets of a token stream."""
    s = np.asarray(stream, dtype=np.int64)
    return s[None, :-1], s[None, 1:]


def test_a_repeated_bigram_is_a_hit_on_its_second_occurrence_only():
    # stream a b c a b d : bigrams (a,b) (b,c) (c,a) (a,b) (b,d); the 4th repeats the 1st
    x, y = windows([1, 2, 3, 1, 2, 4])
    assert ar_hit_mask(x, y).tolist() == [[False, False, False, True, False]]


def test_a_repeated_token_with_another_successor_is_no_hit():
    # a b a c: the token a repeats, the bigram (a, c) does not
    x, y = windows([1, 2, 1, 3])
    assert not ar_hit_mask(x, y).any()


def test_every_later_repeat_is_a_hit_and_runs_of_one_token_count():
    # a a a a: (a,a) first at position 0, then repeated at 1 and 2
    x, y = windows([5, 5, 5, 5])
    assert ar_hit_mask(x, y).tolist() == [[False, True, True]]
    # x y x y x y: (x,y) at 0, 2, 4 and (y,x) at 1, 3
    x, y = windows([7, 8, 7, 8, 7, 8])
    assert ar_hit_mask(x, y).tolist() == [[False, False, True, True, True]]


def test_rows_are_independent_sequences():
    x = np.array([[1, 2, 1, 2], [3, 1, 9, 9]])
    y = np.array([[2, 1, 2, 0], [1, 2, 9, 9]])
    # row 1 holds (1,2) too, but its first occurrence there is at position 1: no hit across rows
    assert ar_hit_mask(x, y).tolist() == [[False, False, True, False], [False, False, False, True]]


def test_an_ignored_target_is_never_a_hit_nor_an_earlier_occurrence():
    x = np.array([[1, 1, 1]])
    y = np.array([[2, IGNORE, 2]])
    assert ar_hit_mask(x, y).tolist() == [[False, False, True]]
    x = np.array([[1, 1]])
    y = np.array([[IGNORE, IGNORE]])
    assert not ar_hit_mask(x, y).any()


def test_bigrams_are_told_apart_for_any_token_values():
    # (1, 20) and (2, 0) would share the id 1*base+20 with a too-small base; they must not match
    x = np.array([[1, 2]])
    y = np.array([[20, 0]])
    assert not ar_hit_mask(x, y).any()
    assert ar_hit_mask(torch.tensor([[40000, 40000]]), torch.tensor([[65000, 65000]])).tolist() == [[False, True]]


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        ar_hit_mask(np.zeros((2, 3)), np.zeros((2, 4)))


def test_the_loss_split_sums_cross_entropy_per_group():
    # two tokens over a 2-word vocabulary with known probabilities
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
    y = torch.tensor([[0, 0, 1]])
    hit = torch.tensor([[False, True, True]])
    split = LossSplit()
    split.add(logits, y, hit)
    assert split.hit_n == 2 and split.other_n == 1
    assert split.hit_loss == pytest.approx((-math.log(0.9) - math.log(0.8)) / 2)
    assert split.other_loss == pytest.approx(-math.log(0.5))
    # the two groups partition the scored tokens: their weighted mean is the plain mean loss
    total = torch.nn.functional.cross_entropy(logits[0], y[0]).item()
    assert (split.hit_sum + split.other_sum) / 3 == pytest.approx(total)


def test_the_loss_split_leaves_ignored_targets_out_and_reports_none_without_tokens():
    logits = torch.zeros(1, 2, 4)
    split = LossSplit()
    split.add(logits, torch.tensor([[IGNORE, 3]]), torch.tensor([[True, False]]))
    assert (split.hit_n, split.other_n) == (0, 1)
    assert split.hit_loss is None and split.other_loss == pytest.approx(math.log(4))


def test_eval_output_shows_the_split_and_older_runs_without_it_show_nothing():
    from rich.console import Console

    from archscout.records import RunResult, TaskResult
    from archscout.ui import render_result

    def shown(**lm_fields) -> str:
        lm = TaskResult(name="lm", kind="lm", steps_done=1, steps_planned=1, params=1, val_loss=5.0, **lm_fields)
        console = Console(record=True, width=120)
        render_result(console, RunResult(candidate_hash="c", preset="nano", seed=0, status="ok", tasks={"lm": lm}))
        return console.export_text()

    assert "LM loss: AR hits / other │ 3.6000 / 5.4000  (604 hits)" in shown(ar_hit_loss=3.6, other_loss=5.4, ar_hits=604)
    assert "AR hits" not in shown()
