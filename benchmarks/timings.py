"""The speed figures the tests used to assert with wall-clock bounds (which flake on a busy machine):

- MQAR batch generation: median seconds per training batch (64 x 128 tokens, 16 pairs); target < 5 ms;
- the sandbox stopping an infinite loop with a 1 s timeout: seconds from start until the run returns
  (the tests used to allow 1 s + grace + 2 s), for each isolation mode this machine has;
- the probes on each built-in baseline: total seconds (the tests used to allow 20 s).

    python benchmarks/timings.py

The tests still check the behaviour (the loop times out and leaves no process, every baseline
passes its probes); this script prints how long it took, for the README and for regressions.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from archscout.config import LimitSpec, OptimSpec, task_spec
from archscout.evaluate.sandbox import probe_isolation, run_sandboxed, scratch_dir
from archscout.evaluate.tasks import build_task

LOOP = "while True:\n    pass\n"


def mqar_batch_s() -> float:
    spec = task_spec(name="mqar", kind="mqar", seq_len=128, vocab_size=512, num_kv_pairs=16,
                    optim=OptimSpec(batch_size=64))
    task = build_task(spec, 0, None)
    times = []
    for step in range(20):
        start = time.perf_counter()
        task.train_batch(step)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sandbox_stop_s(isolation: str) -> float:
    with tempfile.TemporaryDirectory() as folder, scratch_dir() as scratch:
        script = Path(folder) / "loop.py"
        script.write_text(LOOP)
        start = time.monotonic()
        outcome = run_sandboxed([sys.executable, str(script)], scratch=scratch, limits=LimitSpec(),
                                timeout_s=1.0, isolation=isolation, grace_s=1.0, ro_binds=[Path(folder)])
        assert outcome.timed_out, "the infinite loop was not stopped by its timeout"
        return time.monotonic() - start


def probes_s() -> dict[str, float]:
    from archscout.check.probes import run_probes
    from archscout.config import ProbeSpec
    from archscout.space import BASELINES, baseline_path
    from archscout.space.contract import load_mixer_class

    return {name: sum(r.seconds for r in run_probes(load_mixer_class(baseline_path(name)), ProbeSpec()))
            for name in BASELINES}


def main() -> None:
    print(f"mqar batch (64 x 128, median of 20): {mqar_batch_s() * 1e3:.2f} ms  (target < 5 ms)")
    modes = ["fallback"] + (["netns"] if probe_isolation("auto")[0] == "netns" else [])
    for mode in modes:
        print(f"sandbox stops an infinite loop, timeout 1 s ({mode}): {sandbox_stop_s(mode):.2f} s")
    for name, seconds in probes_s().items():
        print(f"probes on {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
