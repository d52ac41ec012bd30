"""End-to-end evaluation through the sandboxed worker: good candidates train, bad ones fail with
the specific failure kind and the useful part of the traceback, and the engine never crashes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from archscout.config import get_preset
from archscout.evaluate.runner import evaluate
from archscout.records import FailureKind, RunResult, code_hash
from archscout.space import baseline_path

SMOKE = get_preset("smoke")

GOOD_HEADER = """
import torch
from torch import nn


"""

GOOD_MIXER = GOOD_HEADER + """
class CumMean(nn.Module):
    def __init__(self, d_model=None, hidden_size=None, num_heads=2, layer_idx=None, **kwargs):
        super().__init__()
        d = d_model or hidden_size
        self.proj = nn.Linear(d, d)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        counts = torch.arange(1, hidden_states.shape[1] + 1, device=hidden_states.device)
        mean = hidden_states.cumsum(1) / counts[None, :, None].to(hidden_states.dtype)
        return self.proj(mean), None, past_key_values
"""


def _write(tmp_path: Path, source: str, name: str = "cand.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _probe(path: Path) -> RunResult:
    return evaluate(path, SMOKE, seed=0, probe_only=True)


def test_good_candidate_trains_and_reports_every_figure(tmp_path):
    result = evaluate(_write(tmp_path, GOOD_MIXER), SMOKE, seed=0)
    assert result.ok, result.failure
    assert set(result.tasks) == {"lm", "mqar"}
    assert result.val_loss is not None and result.val_loss > 0
    assert 0.0 <= result.benchmark <= 1.0
    assert result.tokens_per_s > 0 and result.params > 0
    assert {"probe", "train", "total"} <= set(result.wall_s)
    assert result.class_name == "CumMean"
    assert result.isolation in ("netns", "fallback")
    lm = result.tasks["lm"]
    assert lm.steps_done == lm.steps_planned == SMOKE.lm_task.optim.steps
    assert lm.eval_curve and lm.train_curve
    # the record survives a JSON round trip unchanged, as the study database needs
    assert RunResult.model_validate_json(result.model_dump_json()) == result


def test_training_is_deterministic_given_candidate_preset_and_seed(tmp_path):
    path = _write(tmp_path, GOOD_MIXER)
    a = evaluate(path, SMOKE, seed=3)
    b = evaluate(path, SMOKE, seed=3)
    c = evaluate(path, SMOKE, seed=4)
    assert a.val_loss == b.val_loss and a.benchmark == b.benchmark
    assert a.tasks["lm"].train_curve == b.tasks["lm"].train_curve
    assert a.tasks["lm"].train_curve != c.tasks["lm"].train_curve


def test_baseline_deltanet_passes_at_smoke():
    result = evaluate(baseline_path("deltanet"), SMOKE, seed=0)
    assert result.ok, result.failure
    assert all(p.passed for p in result.probes)


BAD = {
    "syntax": ("def broken(:\n    pass\n", FailureKind.syntax, "line 1"),
    "no_class": ("import torch\nx = 1\n", FailureKind.contract, "no nn.Module"),
    "missing_import": ("import not_a_real_module_xyz\n", FailureKind.import_error, "not_a_real_module_xyz"),
    "import_time_error": ("raise RuntimeError('boom at import')\n", FailureKind.exception, "boom at import"),
    "wrong_signature": (
        GOOD_HEADER + "class M(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
        "    def forward(self, x):\n        return x\n",
        FailureKind.contract,
        "missing",
    ),
    "init_raises": (
        GOOD_MIXER.replace("super().__init__()", "super().__init__()\n        raise ValueError('bad init')"),
        FailureKind.init_error,
        "bad init",
    ),
    "forward_raises": (
        GOOD_MIXER.replace("counts = ", "raise KeyError('bad forward')\n        counts = "),
        FailureKind.forward_error,
        "bad forward",
    ),
    "wrong_shape": (
        GOOD_MIXER.replace("return self.proj(mean), None, past_key_values", "return mean[:, :-1], None, None"),
        FailureKind.contract,
        "shape",
    ),
    "nan_output": (
        GOOD_MIXER.replace("return self.proj(mean)", "return self.proj(mean) * float('nan')"),
        FailureKind.nan,
        "",
    ),
    "leak": (
        GOOD_MIXER.replace("hidden_states.cumsum(1)", "hidden_states.flip(1).cumsum(1).flip(1)"),
        FailureKind.leak,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_candidate_fails_with_a_specific_kind(tmp_path, case):
    source, kind, fragment = BAD[case]
    result = _probe(_write(tmp_path, source))
    assert result.status == "failed"
    assert result.failure.kind == kind, result.failure
    assert fragment in result.failure.message + result.failure.log_tail
    assert "\n" not in result.failure.message  # one line for the user


def test_nan_during_training_is_stopped_by_the_monitor(tmp_path):
    # fine for the probes' few calls, NaN once training has run a few steps
    source = GOOD_MIXER.replace(
        "counts = torch.arange",
        "self.calls = getattr(self, 'calls', 0) + 1\n"
        "        if self.calls > 5:\n"
        "            hidden_states = hidden_states * float('nan')\n"
        "        counts = torch.arange",
    )
    result = evaluate(_write(tmp_path, source), SMOKE, seed=0)
    assert result.status == "failed"
    assert result.failure.kind == FailureKind.nan
    assert "step" in result.failure.message


FORGE = """
import json, os
{payload}
os._exit(0)
"""


@pytest.mark.parametrize(
    "payload, fragment",
    [
        # a well-formed result claiming success for some other candidate
        ("json.dump({'candidate_hash': 'forged', 'preset': 'smoke', 'seed': 0, 'status': 'ok', 'val_loss': 0.01},"
         " open(os.environ['ARCHSCOUT_RESULT'], 'w'))", "does not match"),
        ("open(os.environ['ARCHSCOUT_RESULT'], 'w').write('{not json')", "corrupt result"),
        ("pass", "without writing a result"),
    ],
)
def test_a_forged_or_corrupt_result_is_an_invalid_result(tmp_path, payload, fragment):
    result = _probe(_write(tmp_path, FORGE.format(payload=payload)))
    assert result.status == "failed"
    assert result.failure.kind == FailureKind.invalid_result
    assert fragment in result.failure.message


# -- probes and training in one child ---------------------------------------------------------------


def test_the_child_reports_passed_probes_before_it_trains_and_the_result_carries_that_report(tmp_path):
    seen: list[tuple[str, object]] = []
    result = evaluate(_write(tmp_path, GOOD_MIXER), SMOKE, seed=0,
                      on_checked=lambda report: seen.append(("checked", report)),
                      progress=lambda event: seen.append(("event", event)))
    assert result.ok, result.failure
    checked = [i for i, (kind, _) in enumerate(seen) if kind == "checked"]
    assert len(checked) == 1
    report = seen[checked[0]][1]
    assert report.ok and report.candidate_hash == result.candidate_hash
    assert report.probes == result.probes and report.params == result.params
    # the report is handed over while the same child goes on to train
    first_step = next(i for i, (kind, e) in enumerate(seen) if kind == "event" and "task" in e)
    assert checked[0] < first_step
    assert not any(kind == "event" and "probed" in e for kind, e in seen)  # consumed by the runner


# fails only on the probes' batch of 3 (smoke trains with 4 and 16): the probes reject it, training
# does not
PROBE_ONLY_FAILURE = GOOD_MIXER.replace(
    "return self.proj(mean), None, past_key_values",
    "if hidden_states.shape[0] == 3:\n            raise RuntimeError('the probes batch')\n"
    "        return self.proj(mean), None, past_key_values",
)


def test_a_stored_probe_report_of_the_same_file_trains_without_probing(tmp_path):
    path = _write(tmp_path, PROBE_ONLY_FAILURE)
    assert not evaluate(path, SMOKE, seed=0, probe_only=True).ok
    good = evaluate(_write(tmp_path, GOOD_MIXER, "good.py"), SMOKE, seed=0, probe_only=True)
    assert good.ok, good.failure
    stored = good.model_copy(update={"candidate_hash": code_hash(path.read_text())})
    calls: list = []
    result = evaluate(path, SMOKE, seed=0, probed=stored, on_checked=calls.append)
    # trained: had the probes run, they would have stopped it before training
    assert result.ok, result.failure
    assert result.tasks and result.probes == good.probes and calls == []
    # a report of another file says nothing about this one: probed again, and rejected
    again = evaluate(path, SMOKE, seed=0, probed=good)
    assert not again.ok and not again.tasks


def test_probes_are_held_to_the_probe_time_limit_inside_the_one_child(tmp_path):
    source = GOOD_MIXER.replace("super().__init__()", "super().__init__()\n        import time\n        time.sleep(3600)")
    preset = SMOKE.model_copy(deep=True)
    preset.limits.probe_timeout_s = 5
    calls: list = []
    result = evaluate(_write(tmp_path, source), preset, seed=0, on_checked=calls.append)
    assert result.failure is not None and result.failure.kind == FailureKind.timeout
    assert "probes" in result.failure.message
    assert calls == [] and not result.tasks
