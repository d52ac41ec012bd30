"""Candidate files written in ASI-Arch's style (fla imports, einops, a @torch.compile helper with a
bf16 cast, a step counter; or fla.ops called directly) probe and train at `smoke` through the real
sandboxed worker and the compat fla package, and the run records what ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from archscout.config import get_preset
from archscout.evaluate.runner import evaluate

FIXTURES = Path(__file__).parents[1] / "compat" / "fixtures"


@pytest.mark.slow
def test_fla_style_file_with_bf16_casts_and_a_step_counter_probes_and_trains_at_smoke():
    result = evaluate(FIXTURES / "fla_style_delta.py", get_preset("smoke"))
    assert result.ok, result.failure
    assert result.runtime["kernels"] == "compat" and result.runtime["compile"] == "off (cpu)"
    assert "casts keep fp32" in result.runtime["dtype"]
    probes = {p.name: p for p in result.probes}
    # the step counter is reported as its own verdict, and causality was judged with the state reset
    assert not probes["stateful"].passed and probes["stateful"].details["state_reset"]
    assert probes["causality"].passed and probes["causality"].details["dtype"] == "float64"
    assert result.val_loss is not None and result.tasks["lm"].steps_done == result.tasks["lm"].steps_planned


@pytest.mark.slow
def test_file_calling_fla_ops_probes_and_trains_at_smoke():
    result = evaluate(FIXTURES / "fla_ops_gated.py", get_preset("smoke"))
    assert result.ok, result.failure
    assert all(p.passed for p in result.probes if p.name != "complexity")
    assert result.val_loss is not None and result.benchmark is not None


def test_extra_import_path_reaches_the_sandboxed_candidate(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "shared_mixers.py").write_text((FIXTURES / "fla_ops_gated.py").read_text())
    candidate = tmp_path / "cand.py"
    candidate.write_text("from shared_mixers import GatedMixer\n\n\nclass DeltaNet(GatedMixer):\n    pass\n")
    without = evaluate(candidate, get_preset("smoke"), probe_only=True)
    assert without.failure is not None and without.failure.kind.value == "import_error"
    assert "shared_mixers" in without.failure.message
    with_path = evaluate(candidate, get_preset("smoke"), probe_only=True, extra_paths=[str(lib)])
    assert with_path.ok, with_path.failure


def test_a_failed_probe_puts_its_traceback_in_the_run_log(tmp_path):
    candidate = tmp_path / "cand.py"
    candidate.write_text((FIXTURES / "fla_ops_gated.py").read_text().replace(
        "        qkv, _ = self.conv(self.qkv(hidden_states))",
        "        if not self.training:\n            raise ValueError('eval-only failure')\n"
        "        qkv, _ = self.conv(self.qkv(hidden_states))",
    ))
    result = evaluate(candidate, get_preset("smoke"), probe_only=True)
    assert not result.ok
    assert "eval-only failure" in result.failure.message
    assert "Traceback" in result.failure.log_tail and "ValueError" in result.failure.log_tail


@pytest.mark.slow
def test_a_training_timeout_keeps_the_tasks_already_measured(tmp_path):
    candidate = tmp_path / "cand.py"
    # trains the LM task normally, then hangs in the MQAR task (batch 16 at smoke; probes use less)
    candidate.write_text((FIXTURES / "fla_ops_gated.py").read_text().replace(
        "        qkv, _ = self.conv(self.qkv(hidden_states))",
        "        if self.training and hidden_states.shape[0] == 16:\n            import time\n"
        "            time.sleep(3600)\n"
        "        qkv, _ = self.conv(self.qkv(hidden_states))",
    ))
    preset = get_preset("smoke").model_copy(deep=True)
    preset.limits.train_timeout_s = 60
    result = evaluate(candidate, preset)
    assert result.failure is not None and result.failure.kind.value == "timeout"
    assert set(result.tasks) == {"lm"} and result.tasks["lm"].val_loss is not None
