"""The worker's candidate environment: `import fla` served by the compat package only inside the
process that called `prepare`, torch.compile off on CPU, bf16 casts kept at the working precision for
files written for GPU autocast, and extra import paths. Each case runs in a fresh interpreter
(prepare changes that process for good, as it does in the worker)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from archscout.evaluate.candidate_env import KeepPrecision, casts_to_low_precision

FIXTURES = Path(__file__).parents[1] / "compat" / "fixtures"


def _child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fla_is_not_importable_outside_the_worker():
    # the compat package is never installed as a top-level `fla` in the user's environment
    assert importlib.util.find_spec("fla") is None or "archscout" not in str(importlib.util.find_spec("fla").origin)


def test_prepare_serves_compat_fla_disables_compile_and_runs_a_bf16_casting_file_in_fp32():
    got = _child(f"""
        import json, torch
        from pathlib import Path
        from archscout.evaluate.candidate_env import prepare
        path = Path({str(FIXTURES / "fla_style_delta.py")!r})
        decided = prepare("train", "cpu", path, autocast=False)
        import fla, fla.modules, archscout.compat.fla.modules as compat
        from archscout.space.contract import load_mixer_class
        f = lambda x: x
        cls = load_mixer_class(path)
        mixer = cls(d_model=32, num_heads=2, layer_idx=0)
        o, aux, cache = mixer(torch.randn(2, 10, 32))
        print(json.dumps(dict(decided=decided, version=fla.__version__, same=fla.modules.RMSNorm is compat.RMSNorm,
                              compile_identity=torch.compile(f) is f, dtype=str(o.dtype), shape=list(o.shape))))
    """)
    assert got["decided"]["kernels"] == "compat" and got["version"] == "compat" and got["same"]
    assert got["decided"]["compile"] == "off (cpu)" and got["compile_identity"]
    assert got["decided"]["dtype"].startswith("fp32; the file's bf16/fp16 casts keep fp32")
    assert got["dtype"] == "torch.float32" and got["shape"] == [2, 10, 32]


def test_without_the_dtype_policy_the_same_file_fails_with_the_dtype_mismatch():
    got = _child(f"""
        import json, sys, torch
        from pathlib import Path
        from archscout.evaluate.candidate_env import AliasFinder
        sys.meta_path.insert(0, AliasFinder({{"fla": "archscout.compat.fla"}}))
        from archscout.space.contract import load_mixer_class
        cls = load_mixer_class(Path({str(FIXTURES / "fla_style_delta.py")!r}))
        try:
            cls(d_model=32, num_heads=2, layer_idx=0)(torch.randn(2, 10, 32))
            print(json.dumps({{"error": None}}))
        except RuntimeError as err:
            print(json.dumps({{"error": str(err)}}))
    """)
    assert got["error"] and ("dtype" in got["error"].lower() or "scalar type" in got["error"])


def test_extra_paths_come_first_on_sys_path(tmp_path):
    (tmp_path / "my_helpers.py").write_text("VALUE = 41\n")
    candidate = tmp_path / "cand.py"
    candidate.write_text("import my_helpers\n")
    got = _child(f"""
        import json, sys
        from pathlib import Path
        from archscout.evaluate.candidate_env import prepare
        prepare("probe", "cpu", Path({str(candidate)!r}), autocast=False, extra_paths=[{str(tmp_path)!r}])
        import my_helpers
        print(json.dumps({{"value": my_helpers.VALUE, "first": sys.path[0]}}))
    """)
    assert got == {"value": 41, "first": str(tmp_path)}


def test_low_precision_casts_are_found_in_the_source():
    assert casts_to_low_precision("x = y.to(torch.bfloat16)")
    assert casts_to_low_precision("x = y.half()")
    assert not casts_to_low_precision("x = y.to(torch.float32)")
    assert not casts_to_low_precision("def broken(:")


def test_keep_precision_holds_float64_and_float32_but_not_integer_tensors():
    with KeepPrecision():
        assert torch.ones(2, dtype=torch.float64).to(torch.bfloat16).dtype == torch.float64
        assert torch.ones(2).bfloat16().dtype == torch.float32
        assert torch.ones(2).to("cpu", torch.float16).dtype == torch.float32
        assert torch.ones(2).to(dtype=torch.bfloat16).dtype == torch.float32
        assert torch.zeros(2, dtype=torch.bfloat16).dtype == torch.float32
        assert torch.ones(2, dtype=torch.int64).to(torch.bfloat16).dtype == torch.bfloat16
    assert torch.ones(2).bfloat16().dtype == torch.bfloat16


def test_study_candidate_paths_resolve_against_the_study_folder(tmp_path):
    from archscout.study import StudyConfig

    cfg = StudyConfig(candidate_paths=["lib", "/abs/mixers"])
    assert cfg.candidate_path_list(tmp_path) == [str(tmp_path / "lib"), "/abs/mixers"]


def test_unpack_hint_imports_with_and_without_transformers_installed(tmp_path):
    candidate = tmp_path / "cand.py"
    candidate.write_text("from transformers.processing_utils import Unpack\n")
    got = _child(f"""
        import json, sys
        from pathlib import Path
        sys.modules["transformers"] = None  # find_spec now reports transformers as absent
        from archscout.evaluate.candidate_env import prepare
        prepare("probe", "cpu", Path({str(candidate)!r}), autocast=False)
        del sys.modules["transformers"]
        from transformers.processing_utils import Unpack
        import transformers
        print(json.dumps({{"stub": transformers.__name__ == "archscout.compat.transformers", "unpack": str(Unpack)}}))
    """)
    assert got["stub"] and "Unpack" in got["unpack"]


def test_a_second_prepare_replaces_the_first_in_the_same_process(tmp_path):
    # the worker probes and trains in one process: training's environment must not inherit the
    # probes' (here: with bf16 autocast on, the probes keep the file's casts at full precision and
    # training runs them as written), and nothing is installed twice
    got = _child(f"""
        import json, sys, torch
        from pathlib import Path
        from archscout.evaluate.candidate_env import AliasFinder, prepare
        path = Path({str(FIXTURES / "fla_style_delta.py")!r})
        probe = prepare("probe", "cpu", path, autocast=True, extra_paths=[{str(tmp_path)!r}])
        probe_cast = str(torch.ones(2).bfloat16().dtype)
        import fla
        train = prepare("train", "cpu", path, autocast=True, extra_paths=[{str(tmp_path)!r}])
        train_cast = str(torch.ones(2).bfloat16().dtype)
        print(json.dumps(dict(probe=probe, train=train, probe_cast=probe_cast, train_cast=train_cast,
                              finders=sum(isinstance(f, AliasFinder) for f in sys.meta_path),
                              paths=sys.path.count({str(tmp_path)!r}), fla_loaded="fla" in sys.modules)))
    """)
    assert got["probe"]["dtype"].startswith("fp32") and got["probe_cast"] == "torch.float32"
    assert got["train"]["dtype"] == "bf16 autocast" and got["train_cast"] == "torch.bfloat16"
    assert got["probe"]["compile"] == "off (probes)" and got["train"]["compile"] == "off (cpu)"
    assert got["finders"] == 1 and got["paths"] == 1
    assert not got["fla_loaded"]  # the alias the probes imported is imported afresh for training
