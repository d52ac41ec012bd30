"""The parent's scoring driver (evaluate/scoring.py) against the child's oracle (evaluate/oracle.py)
in one process, without the sandbox: a real model (the backbone around a real mixer, untrained) on
the real smoke tasks. The end-to-end runs through the sandbox are in test_cheats.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from archscout.config import get_preset
from archscout.evaluate import oracle
from archscout.evaluate.runner import prepare_tasks
from archscout.evaluate.scoring import ScoringDriver, ScoringError, _Dir
from archscout.evaluate.tasks import lm
from archscout.records import FailureKind, RunResult, TaskResult
from archscout.space.backbone import Backbone
from archscout.space.contract import load_mixer_class

CHEATS = Path(__file__).parent / "cheats"
BASELINES = Path(__file__).parents[2] / "archscout" / "space" / "baselines"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    preset = get_preset("smoke")
    cache = tmp_path_factory.mktemp("cache")
    prepare_tasks(preset, cache)
    return preset, cache


def _serve(setup, tmp_path, mixer_file: Path, **checks) -> ScoringDriver:
    """Run every evaluation round of the preset's tasks with an untrained model."""
    preset, cache = setup
    folder = tmp_path / "oracle"
    folder.mkdir()
    driver = ScoringDriver(folder, preset, 0, cache, check_seed=1, **checks)
    driver.start()
    child = oracle.ChildOracle(folder)
    cls = load_mixer_class(mixer_file)
    for spec in preset.tasks:
        torch.manual_seed(0)
        model = Backbone(cls, spec.model, spec.vocab_size, chunk_size=preset.chunk_size)
        for step in range(spec.eval_every, spec.optim.steps + 1, spec.eval_every):
            served = threading.Thread(target=child, args=(model, spec.name, step), daemon=True)
            served.start()
            while served.is_alive() and driver.error is None:
                served.join(0.05)
            if driver.error is not None:
                break
    driver.halt.set()
    driver.join(10)
    return driver


def test_an_honest_model_is_scored_by_the_parent_with_every_copy_agreeing(setup, tmp_path):
    driver = _serve(setup, tmp_path, BASELINES / "linear_attention.py", lengths=(0.5,))
    assert driver.error is None
    assert driver.compared >= 2 * (2 + 4 + 1) and driver.max_rel_diff == 0.0
    assert [p.step for p in driver.scores["lm"].curve] == [6, 12]
    assert 0 <= driver.scores["mqar"].curve[-1].value <= 1
    # an untrained model over a 512-token vocabulary: cross-entropy near ln(512)
    assert abs(driver.scores["lm"].curve[-1].value - torch.log(torch.tensor(512.0)).item()) < 0.5


def test_the_parent_splits_the_lm_loss_into_ar_hits_and_others_and_overwrites_the_childs(setup, tmp_path):
    preset, _ = setup
    driver = _serve(setup, tmp_path, BASELINES / "deltanet.py")
    assert driver.error is None
    split = driver.loss_split["lm"]
    data = driver.data["lm"]
    # every held-out target is in one group; the hits are those of the mask over the held-out windows
    assert split.hit_n == int(lm.ar_hit_mask(data.x, data.y).sum()) > 0
    assert split.hit_n + split.other_n == data.y.numel()
    assert (split.hit_sum + split.other_sum) / data.y.numel() == pytest.approx(driver.scores["lm"].curve[-1].value, rel=1e-5)
    # the child's own (forged) figures are replaced by the parent's
    tasks = {s.name: TaskResult(name=s.name, kind="lm", steps_done=s.optim.steps, steps_planned=s.optim.steps, params=1,
                                ar_hit_loss=0.0, other_loss=0.0, ar_hits=1) for s in preset.tasks}
    result = driver.apply(RunResult(candidate_hash="c", preset="smoke", seed=0, status="ok", tasks=tasks, ar_hit_loss=0.0), None)
    assert result.ar_hit_loss == result.tasks["lm"].ar_hit_loss == pytest.approx(split.hit_sum / split.hit_n)
    assert result.tasks["lm"].other_loss == pytest.approx(split.other_sum / split.other_n)
    assert result.tasks["lm"].ar_hits == split.hit_n
    assert result.tasks["mqar"].ar_hit_loss is None and result.tasks["mqar"].ar_hits is None


def test_a_leak_in_the_scored_calls_fails_with_the_evidence(setup, tmp_path):
    driver = _serve(setup, tmp_path, CHEATS / "leak_not_float64.py")
    assert isinstance(driver.error, ScoringError) and driver.error.kind == FailureKind.leak
    assert "replacing the tokens after position" in driver.error.message


def test_the_parent_never_follows_a_link_the_child_planted(tmp_path):
    folder, secret = tmp_path / "oracle", tmp_path / "host-file"
    folder.mkdir()
    secret.write_text("host data")
    d = _Dir(folder)
    os.symlink(secret, folder / "in.0.0.npy")
    d.write("in.0.0.npy", b"request")  # replaces the link, never writes through it
    assert secret.read_text() == "host data" and (folder / "in.0.0.npy").read_bytes() == b"request"
    os.symlink(secret, folder / "out.0.0.npy")
    with pytest.raises(ScoringError) as err:
        d.read("out.0.0.npy", 1024)
    assert err.value.kind == FailureKind.invalid_result
    os.mkfifo(folder / "out.0.1.npy")  # a FIFO must not block the parent
    with pytest.raises(ScoringError):
        d.read("out.0.1.npy", 1024)
    d.close()
