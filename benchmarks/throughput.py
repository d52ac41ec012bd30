"""Throughput figures: chunkwise vs naive delta rule, and training tokens/s of every baseline.

    python benchmarks/throughput.py [--threads 2] [--steps 20]

1. Forward + backward of the delta rule at L = 512 (B 16, H 4, head dim 32, fp32), chunkwise WY
   form against the token-by-token reference, in the same process; prints both medians and the
   ratio (goal: chunkwise >= 10x faster).
2. Training tokens/s of each built-in baseline in the `tiny` preset's LM configuration (d 128,
   2 layers, 4 heads, seq 256, batch 16): the median over timed AdamW steps after warm-up.
   Baselines are the package's own files, so they are loaded in-process here; candidates from a
   search are only ever run through the sandbox.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from archscout.config import get_preset
from archscout.space import BASELINES, baseline_path
from archscout.space.backbone import Backbone
from archscout.space.contract import load_mixer_class
from archscout.space.ops.delta import delta_rule_chunkwise, delta_rule_naive


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def delta_rule_ratio(repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    b, t, h, d = 16, 512, 4, 32
    q = torch.randn(b, t, h, d, requires_grad=True)
    k = F.normalize(torch.randn(b, t, h, d), dim=-1).requires_grad_()
    v = torch.randn(b, t, h, d, requires_grad=True)
    beta = torch.rand(b, t, h).requires_grad_()

    def run(op):
        def step():
            out = op(q, k, v, beta)
            out.square().mean().backward()
        return step

    chunk = _median_time(run(lambda *a: delta_rule_chunkwise(*a, chunk_size=32)), repeats)
    naive = _median_time(run(delta_rule_naive), max(1, repeats // 3))
    return chunk, naive


def baseline_tokens_per_s(name: str, steps: int) -> float:
    spec = get_preset("tiny").lm_task
    torch.manual_seed(0)
    model = Backbone(load_mixer_class(baseline_path(name)), spec.model, spec.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.optim.lr)
    x = torch.randint(0, spec.vocab_size, (spec.optim.batch_size, spec.seq_len))

    def step():
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x.roll(-1, 1).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return x.numel() / _median_time(step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    chunk, naive = delta_rule_ratio(args.repeats)
    print(f"delta rule fwd+bwd, B16 L512 H4 d32 fp32, {args.threads} threads:")
    print(f"  chunkwise {chunk * 1e3:8.1f} ms   naive {naive * 1e3:8.1f} ms   ratio {naive / chunk:5.1f}x")
    print(f"training tokens/s at the tiny LM config (median of {args.steps} steps):")
    for name in BASELINES:
        print(f"  {name:<18} {baseline_tokens_per_s(name, args.steps):10,.0f}")


if __name__ == "__main__":
    main()
