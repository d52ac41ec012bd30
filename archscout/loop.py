"""The discovery loop: one experiment as one readable function, and a study that resumes.

    sample -> propose (+ novelty) -> check (probes) -> evaluate (train) -> score -> analyze -> done

Each stage's output and the experiment's state transition are committed in one transaction, so a
process killed at any point leaves either the old state or the new one, never half of both; on the
next `run` an unfinished experiment continues from its last committed state and nothing is counted
twice. Candidate code runs only in the sandboxed worker (through evaluate.runner). The baseline is
evaluated first over several seeds: it is both the fitness reference and the noise floor.
"""

from __future__ import annotations

import ast
import hashlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Callable

from archscout.analyze.analyst import ArchSummary, analyze
from archscout.analyze.fitness import BaselineRef, baseline_ref_from_runs, compute_fitness
from archscout.evaluate.runner import merge_phases, run_phase, source_file
from archscout.propose.base import ArchView, ProposalContext, Proposer
from archscout.propose.mutate import OfflineProposer
from archscout.propose.novelty import MotivationIndex, normalized_hash
from archscout.records import RunResult
from archscout.space import BASELINES, baseline_path
from archscout.store import pool
from archscout.store.rows import Architecture, Experiment
from archscout.study import StudyHandle

Events = Callable[[dict], None]
EXPLORE = "explore"


class BaselineFailed(RuntimeError):
    """The study's baseline itself failed: nothing can be scored against it."""


def _fault(point: str) -> None:
    """Test hook: `ARCHSCOUT_FAULT=point` SIGKILLs this process there (crash-resume tests)."""
    if os.environ.get("ARCHSCOUT_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


class Loop:
    def __init__(self, study: StudyHandle, proposer: Proposer | None = None, events: Events | None = None):
        self.study, self.db, self.cfg, self.preset = study, study.db, study.config, study.preset
        self.exps = self.db.experiments
        self.proposer = proposer or OfflineProposer()
        self.events = events or (lambda event: None)
        self.policy = self.cfg.pool_policy()
        self.baseline_id: int | None = None
        self.ref: BaselineRef | None = None
        self.references: dict[str, dict] = {}
        self.motivations: MotivationIndex | None = None
        self._probed: dict[int, RunResult] = {}

    # -- baseline ---------------------------------------------------------------------------------

    def ensure_baseline(self) -> BaselineRef:
        """Evaluate the baseline over K seeds (only the missing ones) and seed the pool with it."""
        path = baseline_path(self.cfg.baseline) if self.cfg.baseline in BASELINES else Path(self.cfg.baseline)
        code = path.read_text()
        self.baseline_id = self.db.add_architecture(
            code, name=path.stem, origin="baseline", norm_hash=normalized_hash(code),
            motivation=f"the study's baseline ({path.name})",
        )
        seeds = [self.cfg.explore_seed + i for i in range(self.cfg.baseline_seeds)]
        done = {r.seed for r in self.db.runs_for(self.baseline_id, EXPLORE, self.preset.name) if r.status == "ok"}
        for seed in seeds:
            if seed in done:
                continue
            self.events({"stage": "baseline", "seed": seed, "of": len(seeds)})
            result = self._evaluate(code, seed)
            if not result.ok:
                raise BaselineFailed(
                    f"the baseline {path.name} failed on seed {seed} ({result.failure.kind.value}): {result.failure.message}"
                )
            self.db.add_run(self.baseline_id, EXPLORE, result)
        runs = [r.result for r in self.db.runs_for(self.baseline_id, EXPLORE, self.preset.name) if r.status == "ok"]
        self.ref = baseline_ref_from_runs(runs)
        first = next(r for r in runs if r.seed == self.cfg.explore_seed)
        self.references = {
            name: {"train_curve": [p.model_dump() for p in t.train_curve], "step_time_s": t.step_time_s}
            for name, t in first.tasks.items()
        }
        if self.db.score(self.baseline_id, EXPLORE, self.preset.name) is None:
            self._store_score(self.baseline_id, first)
        if self.db.latest_pool_version() is None:
            pool.init_pool(self.db, [self.baseline_id], preset=self.preset.name)
        return self.ref

    # -- one experiment ---------------------------------------------------------------------------

    def run_experiment(self, exp: Experiment) -> Experiment:
        """Carry one experiment from its current state to done or failed."""
        stages = (
            ("sampled", self.propose),
            ("proposed", self.check),
            ("checked", self.evaluate),
            ("evaluated", self.score),
            ("scored", self.analyze),
            ("analyzed", self.finish),
        )
        for state, stage in stages:
            if exp.state == state:
                self.events({"stage": stage.__name__, "seq": exp.seq})
                exp = stage(exp)
        return exp

    def sample(self) -> Experiment:
        rng = self._rng(self.exps.next_seq(), "sample")
        parent_id, reference_ids = pool.sample(self.db, self.policy, rng, preset=self.preset.name)
        return self.exps.start(proposer=self.proposer.name, parent_id=parent_id, reference_ids=reference_ids)

    def propose(self, exp: Experiment) -> Experiment:
        rng = self._rng(exp.seq, "propose")
        ctx = ProposalContext(
            parent=self._view(exp.parent_id), references=[v for i in exp.reference_ids if (v := self._view(i))],
            baseline=self.ref.model_dump() if self.ref else {}, experiment_seq=exp.seq,
        )
        reason = "duplicate"
        for attempt in range(self.cfg.novelty.max_attempts):
            ctx.attempt = attempt
            proposal = self.proposer.propose(ctx, rng)
            try:
                ast.parse(proposal.code)
            except SyntaxError as err:
                reason, ctx.feedback = "invalid_code", f"syntax error at line {err.lineno}: {err.msg}"
                continue
            norm = normalized_hash(proposal.code)
            twins = self.db.architectures_by_norm_hash(norm)
            if twins:
                reason, ctx.feedback = "duplicate", f"same code as architecture #{twins[0].id} ({twins[0].name})"
                continue
            near = self._motivation_index().is_near_duplicate(proposal.motivation)
            note = f"near-duplicate motivation of #{near[1]} ({near[2]:.2f})" if near[0] else ""
            with self.db.transaction() as tx:
                arch_id = self.db.add_architecture(
                    proposal.code, name=proposal.name, origin=proposal.origin, norm_hash=norm,
                    parent_id=exp.parent_id, motivation=proposal.motivation, genome=proposal.genome,
                    experiment_id=exp.id, conn=tx,
                )
                exp = self.exps.advance(exp.id, "proposed", architecture_id=arch_id, note=note, conn=tx)
                _fault("commit:proposed")
            self._motivation_index().add(arch_id, proposal.motivation)
            return exp
        return self.exps.fail(exp.id, reason, ctx.feedback)

    def check(self, exp: Experiment) -> Experiment:
        arch = self.db.architecture(exp.architecture_id)
        probed = self._phase("probe", arch.code, self.cfg.explore_seed)
        if not probed.ok:
            with self.db.transaction() as tx:
                self.db.add_run(arch.id, EXPLORE, probed, conn=tx)
                return self.exps.fail(exp.id, probed.failure.kind.value, probed.failure.message, conn=tx)
        self._probed[exp.id] = probed
        return self.exps.advance(exp.id, "checked")

    def evaluate(self, exp: Experiment) -> Experiment:
        arch = self.db.architecture(exp.architecture_id)
        # after a restart the probe result is gone from memory: probing again is cheap and exact
        probed = self._probed.pop(exp.id, None) or self._phase("probe", arch.code, self.cfg.explore_seed)
        result = probed if not probed.ok else merge_phases(probed, self._phase("train", arch.code, self.cfg.explore_seed))
        _fault("after:train")
        with self.db.transaction() as tx:
            self.db.add_run(arch.id, EXPLORE, result, conn=tx)
            if not result.ok:
                return self.exps.fail(exp.id, result.failure.kind.value, result.failure.message, conn=tx)
            exp = self.exps.advance(exp.id, "evaluated", conn=tx)
            _fault("commit:evaluated")
        return exp

    def score(self, exp: Experiment) -> Experiment:
        run = self._explore_run(exp.architecture_id)
        with self.db.transaction() as tx:
            self._store_score(exp.architecture_id, run.result, conn=tx)
            exp = self.exps.advance(exp.id, "scored", conn=tx)
            _fault("commit:scored")
        return exp

    def analyze(self, exp: Experiment) -> Experiment:
        arch = self.db.architecture(exp.architecture_id)
        parent = self._summary(arch.parent_id)
        grandparent = self._summary(self.db.architecture(arch.parent_id).parent_id) if arch.parent_id else None
        siblings = [
            s for c in (self.db.children_of(arch.parent_id) if arch.parent_id else [])
            if c.id != arch.id and (s := self._summary(c.id)) and s.fitness is not None
        ]
        result = analyze(self._summary(arch.id), self.ref, parent, grandparent, siblings)
        with self.db.transaction() as tx:
            self.db.add_analysis(arch.id, "statistical", result.text, result.numbers, conn=tx)
            exp = self.exps.advance(exp.id, "analyzed", conn=tx)
        return exp

    def finish(self, exp: Experiment) -> Experiment:
        exp = self.exps.advance(exp.id, "done")
        done = sum(self.exps.counts_by_state().get(s, 0) for s in ("done", "failed"))
        version = pool.maybe_update(self.db, self.policy, done, preset=self.preset.name)
        if version is not None:
            self.events({"stage": "pool", "version": version.version, "size": len(version.members)})
        return exp

    # -- the study --------------------------------------------------------------------------------

    def experiments_counted(self) -> int:
        counts = self.exps.counts_by_state()
        return sum(counts.values())

    def run(self, budget: int | None = None, hours: float | None = None) -> dict[str, int]:
        """Resume open experiments, then start new ones until the budget or the time is spent."""
        budget = self.cfg.budget if budget is None else budget
        deadline = time.monotonic() + hours * 3600 if hours else None
        self.ensure_baseline()
        for exp in self.exps.open_experiments():
            self.events({"stage": "resume", "seq": exp.seq, "state": exp.state})
            self.run_experiment(exp)
        while self.experiments_counted() < budget:
            if deadline is not None and time.monotonic() > deadline:
                break
            exp = self.sample()
            self.events({"stage": "start", "seq": exp.seq})
            exp = self.run_experiment(exp)
            every = self.cfg.verify.every
            if every and self.experiments_counted() % every == 0:
                from archscout.verify import Verifier

                self.events({"stage": "verification pass"})
                Verifier(self.study, self.events).run()
            top = self.db.top_scores(EXPLORE, self.preset.name, 1)
            self.events({
                "stage": "end", "seq": exp.seq, "state": exp.state, "reason": exp.failure_reason,
                "best": top[0][1] if top else None,
            })
        return self.exps.counts_by_state()

    def add_user_file(self, path: Path) -> Experiment:
        """A user's own candidate: stored as origin `user`, then evaluated like any other."""
        self.ensure_baseline()
        code = Path(path).read_text()
        exp = self.exps.start(proposer="user")
        try:
            norm = normalized_hash(code)
        except SyntaxError as err:
            return self.exps.fail(exp.id, "syntax", f"syntax error at line {err.lineno}: {err.msg}")
        if twins := self.db.architectures_by_norm_hash(norm):
            return self.exps.fail(exp.id, "duplicate", f"same code as architecture #{twins[0].id}")
        with self.db.transaction() as tx:
            arch_id = self.db.add_architecture(
                code, name=Path(path).stem, origin="user", norm_hash=norm, motivation="added by the user",
                experiment_id=exp.id, conn=tx,
            )
            exp = self.exps.advance(exp.id, "proposed", architecture_id=arch_id, conn=tx)
        return self.run_experiment(exp)

    # -- helpers ----------------------------------------------------------------------------------

    def _rng(self, seq: int, purpose: str) -> random.Random:
        # derived from (study seed, experiment number): a resumed experiment proposes the same thing
        digest = hashlib.sha256(f"{self.cfg.seed}:{seq}:{purpose}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _phase(self, phase: str, code: str, seed: int) -> RunResult:
        with source_file(code) as path:
            return run_phase(
                phase, path, self.preset, seed, device=self.cfg.device,
                baseline_params=self.ref_params(), references=self.references, progress=self._progress,
            )

    def _progress(self, event: dict) -> None:
        if "task" in event:
            _fault("during:train")
        self.events(event)

    def _evaluate(self, code: str, seed: int) -> RunResult:
        probed = self._phase("probe", code, seed)
        return probed if not probed.ok else merge_phases(probed, self._phase("train", code, seed))

    def ref_params(self) -> int | None:
        if self.ref is None or self.ref.params_mean is None:
            return None
        return int(self.ref.params_mean)

    def _store_score(self, arch_id: int, result: RunResult, conn=None) -> None:
        breakdown = compute_fitness(result, self.ref, self.cfg.fitness)
        self.db.add_score(
            arch_id, EXPLORE, self.preset.name, breakdown.fitness, breakdown.model_dump(mode="json"),
            self.ref.model_dump(mode="json"), conn=conn,
        )

    def _explore_run(self, arch_id: int):
        return next(r for r in self.db.runs_for(arch_id, EXPLORE, self.preset.name) if r.seed == self.cfg.explore_seed)

    def _summary(self, arch_id: int | None) -> ArchSummary | None:
        if arch_id is None:
            return None
        arch: Architecture = self.db.architecture(arch_id)
        runs = [r for r in self.db.runs_for(arch_id, EXPLORE, self.preset.name) if r.status == "ok"]
        run = next((r for r in runs if r.seed == self.cfg.explore_seed), runs[0] if runs else None)
        score = self.db.score(arch_id, EXPLORE, self.preset.name)
        return ArchSummary(
            id=arch.id, name=arch.name, code=arch.code, genome=arch.genome,
            val_loss=run.val_loss if run else None, benchmark=run.benchmark if run else None,
            fitness=score.fitness if score else None, tokens_per_s=run.tokens_per_s if run else None,
            params=run.params if run else None,
        )

    def _view(self, arch_id: int | None) -> ArchView | None:
        summary = self._summary(arch_id)
        if summary is None:
            return None
        arch = self.db.architecture(arch_id)
        analyses = self.db.analyses_for(arch_id)
        return ArchView(
            id=arch.id, name=arch.name, code=arch.code, motivation=arch.motivation, genome=arch.genome,
            fitness=summary.fitness, val_loss=summary.val_loss, benchmark=summary.benchmark,
            analysis=analyses[-1].text if analyses else "",
        )

    def _motivation_index(self) -> MotivationIndex:
        if self.motivations is None:
            self.motivations = MotivationIndex(backend=self.cfg.novelty.backend, threshold=self.cfg.novelty.threshold)
            for arch in self.db.all_motivations():
                self.motivations.add(*arch)
        return self.motivations
