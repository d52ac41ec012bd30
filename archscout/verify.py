"""The verification stage: re-evaluate the best explored architectures over fresh seeds and decide,
with an FDR-controlled test against the baseline's seed distribution, which are real discoveries.

Exploration trains each candidate once (seed `explore_seed`); the best of thousands of single runs
are inflated by selection alone. Verification trains the top N again over K seeds never used in
exploration (from `VERIFY_SEED_BASE`), optionally at a larger preset, stores those runs with
`stage = verify`, and compares each architecture's seed distribution with the baseline's (Welch,
Benjamini–Hochberg across every architecture ever verified at that preset; see analyze/stats.py).
The baseline's own distribution at the study preset is its K exploration seeds — it was never
selected, so they are unbiased; at any other preset it is evaluated over the verification seeds.
Runs are idempotent per (architecture, stage, preset, seed), so a killed verification resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from archscout.analyze.fitness import BASELINE_JUDGE, baseline_ref_from_runs, compute_fitness, delta_bench, delta_loss
from archscout.analyze.stats import HIGHER_IS_BETTER, compare, decide
from archscout.config import Preset, get_preset
from archscout.evaluate.runner import evaluate
from archscout.store.schema import Stage
from archscout.study import StudyHandle, VerifyConfig

VERIFY = Stage.VERIFY
EXPLORE = Stage.EXPLORE
# verification seeds start here; exploration seeds (baseline 0..K-1, explore_seed) stay below it
VERIFY_SEED_BASE = 1000
Events = Callable[[dict], None]


def _metric(run, metric: str) -> float | None:
    return getattr(run.result, metric)


class Verifier:
    def __init__(self, study: StudyHandle, events: Events | None = None):
        self.study, self.db = study, study.db
        self.events = events or (lambda event: None)
        self.cfg: VerifyConfig = study.config.verify

    def preset(self, name: str | None) -> Preset:
        name = name or self.cfg.preset or self.study.preset.name
        if name == self.study.preset.name:
            return self.study.preset
        extra = self.study.config.presets_file
        return get_preset(name, None if extra is None else Path(extra))

    def seeds(self, count: int) -> list[int]:
        return [VERIFY_SEED_BASE + i for i in range(count)]

    def targets(self, top: int) -> list[int]:
        """The top explored architectures at the study preset, the baseline and quarantined ones excluded."""
        from archscout.quarantine import held_ids

        baseline_ids = {a.id for a in self.db.architectures_by_origin("baseline")} | held_ids(self.db)
        ranked = self.db.top_scores(EXPLORE, self.study.preset.name, top + len(baseline_ids))
        return [arch_id for arch_id, _ in ranked if arch_id not in baseline_ids][:top]

    def baseline_runs(self, preset: Preset, seeds: list[int]) -> list:
        base = self.db.architectures_by_origin("baseline")[0]
        # a ladder rung's baseline runs were never selected either: its exploration seeds serve
        if preset.name in self.study.config.rungs():
            return [r for r in self.db.runs_for(base.id, EXPLORE, preset.name) if r.status == "ok"]
        self._ensure_runs(base.id, preset, seeds)
        return [r for r in self.db.runs_for(base.id, VERIFY, preset.name) if r.status == "ok"]

    def _ensure_runs(self, arch_id: int, preset: Preset, seeds: list[int]) -> None:
        arch = self.db.architecture(arch_id)
        done = {r.seed for r in self.db.runs_for(arch_id, VERIFY, preset.name)}
        for seed in seeds:
            if seed in done:
                continue
            self.events({"stage": "verify", "arch": arch.name, "seed": seed})
            result = evaluate(arch.code, preset, seed, device=self.study.config.device, progress=self.events,
                              extra_paths=self.study.config.candidate_path_list(self.study.folder))
            self.db.add_run(arch_id, VERIFY, result)

    def run(self, top: int | None = None, seeds: int | None = None, preset: str | None = None,
            ids: list[int] | None = None) -> dict[str, Any]:
        """Re-evaluate the targets (the top explored, or `ids`: the ladder's survivors) over fresh
        seeds, then decide every architecture verified so far."""
        spec = self.preset(preset)
        seed_list = self.seeds(seeds or self.cfg.seeds)
        base_runs = self.baseline_runs(spec, seed_list)
        for arch_id in (ids if ids is not None else self.targets(top or self.cfg.top)):
            self._ensure_runs(arch_id, spec, seed_list)
        return self.decide(spec, base_runs)

    def decide(self, spec: Preset, base_runs: list) -> dict[str, Any]:
        rule = self.cfg.rule
        baseline_id = self.db.architectures_by_origin("baseline")[0].id
        ref = baseline_ref_from_runs([r.result for r in base_runs])
        comparisons: dict[int, dict] = {}
        for arch_id in self.db.architectures_with_runs(VERIFY, spec.name):
            if arch_id == baseline_id:
                continue
            runs = [r for r in self.db.runs_for(arch_id, VERIFY, spec.name) if r.status == "ok"]
            comparisons[arch_id] = {}
            for metric, higher in HIGHER_IS_BETTER.items():
                cand = [v for r in runs if (v := _metric(r, metric)) is not None]
                base = [v for r in base_runs if (v := _metric(r, metric)) is not None]
                if len(cand) >= 1 and len(base) >= 1:
                    comparisons[arch_id][metric] = compare(cand, base, higher, metric=metric)
        verdicts = decide(comparisons, rule)
        out = []
        for arch_id, verdict in verdicts.items():
            runs = [r for r in self.db.runs_for(arch_id, VERIFY, spec.name) if r.status == "ok"]
            judge = self.judge_score(arch_id)
            fitness = [compute_fitness(r.result, ref, self.study.config.fitness, judge_score=judge).fitness for r in runs]
            components = {
                "verdict": verdict.model_dump(mode="json"),
                "comparisons": {m: c.model_dump(mode="json") for m, c in comparisons[arch_id].items()},
                "seeds": [r.seed for r in runs],
                "failed_seeds": [r.seed for r in self.db.runs_for(arch_id, VERIFY, spec.name) if r.status != "ok"],
                "explore_delta": self.explore_delta(arch_id, rule.primary),
                "verify_delta": self.verify_delta(runs, ref, rule.primary),
            }
            mean_fitness = sum(fitness) / len(fitness) if fitness else 0.0
            self.db.add_score(arch_id, VERIFY, spec.name, mean_fitness, components, ref.model_dump(mode="json"))
            arch = self.db.architecture(arch_id)
            out.append({"id": arch_id, "name": arch.name, "fitness": mean_fitness, **components})
        out.sort(key=lambda row: (not row["verdict"]["discovery"], -row["fitness"]))
        return {"preset": spec.name, "rule": rule.model_dump(mode="json"), "baseline_seeds": [r.seed for r in base_runs],
                "architectures": out}

    def judge_score(self, arch_id: int) -> float | None:
        """The LLM judge's score from exploration: it rates the design, which new seeds do not change.
        None (recorded as missing) when the judge is not an LLM or its call failed."""
        if self.study.config.fitness.judge != "llm":
            return None
        if self.db.architecture(arch_id).origin == "baseline":
            return BASELINE_JUDGE
        rows = self.db.analyses_for(arch_id, "judge")
        return rows[-1].numbers.get("normalized") if rows and rows[-1].numbers else None

    def explore_delta(self, arch_id: int, metric: str) -> float | None:
        score = self.db.score(arch_id, EXPLORE, self.study.preset.name)
        if score is None:
            return None
        return score.components.get("delta_loss" if metric == "val_loss" else "delta_bench")

    @staticmethod
    def verify_delta(runs: list, ref, metric: str) -> float | None:
        values = [v for r in runs if (v := _metric(r, metric)) is not None]
        if not values:
            return None
        mean = sum(values) / len(values)
        if metric == "val_loss":
            return delta_loss(mean, ref.val_loss_mean)
        return None if ref.benchmark_mean is None else delta_bench(mean, ref.benchmark_mean)
