"""How imported architectures fared in a study: how many loaded, got a probe verdict, passed the
probes and trained; each failure kind with a count and an example message; the advisory findings
(stateful forwards, unused parameters) and the runtime recorded (kernels, compile, dtype policy).

    archscout import asi-arch 106.json --study S && archscout run --study S --preset smoke
    python benchmarks/imported_study.py S
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

from archscout.study import open_study

# failures raised while importing / constructing the file, before any probe has a say
LOAD_KINDS = {"syntax", "import_error", "contract", "exception", "init_error"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    args = parser.parse_args()
    handle = open_study(args.study, create=False)
    db = handle.db
    archs = db.architectures_by_origin("import")
    counts: Counter[str] = Counter()
    kinds: dict[str, list[str]] = defaultdict(list)
    advisories: Counter[str] = Counter()
    runtime: Counter[str] = Counter()
    pending = 0
    for arch in archs:
        exp = db.experiments.get(arch.experiment_id) if arch.experiment_id else None
        runs = [r for r in db.runs_for(arch.id) if r.stage == "explore"]
        if not runs:
            if exp is not None and exp.state == "failed":
                kinds[exp.failure_reason or "?"].append(f"{arch.name}: {exp.failure_message}")
                counts["loaded"] += (exp.failure_reason or "") not in LOAD_KINDS
            else:
                pending += 1
            continue
        result = runs[0].result
        kind = result.failure.kind.value if result.failure else None
        counts["evaluated"] += 1
        if kind not in LOAD_KINDS:
            counts["loaded"] += 1
        if result.probes and kind not in LOAD_KINDS:
            counts["probe verdict"] += 1
        if result.tasks or result.ok:
            counts["passed probes"] += 1
        if result.ok:
            counts["trained"] += 1
        if kind:
            kinds[kind].append(f"{arch.name}: {result.failure.message}")
        for probe in result.probes:
            if probe.name == "stateful" and not probe.passed:
                advisories["stateful (judged with the state reset)" if probe.details.get("state_reset")
                           else "non-deterministic"] += 1
            if probe.name == "gradients" and not probe.passed:
                advisories["unused parameters (warning)"] += 1
        for key, value in result.runtime.items():
            runtime[f"{key}: {value}"] += 1
    handle.close()
    print(f"{len(archs)} imported, {pending} not evaluated yet")
    for key in ("evaluated", "loaded", "probe verdict", "passed probes", "trained"):
        print(f"  {key:<14} {counts[key]}")
    print("\nfailure kinds (count, example)")
    for kind, messages in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        print(f"  {kind:<16} {len(messages):3d}  {messages[0][:220]}")
    print("\nadvisory findings")
    for name, n in advisories.most_common():
        print(f"  {n:3d}  {name}")
    print("\nruntime recorded")
    for name, n in runtime.most_common():
        print(f"  {n:3d}  {name}")


if __name__ == "__main__":
    main()
