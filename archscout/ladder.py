"""The scale ladder: cheap single runs for everyone, more seeds and bigger rungs for the few.

Every new candidate gets one run (the exploration seed) at the first rung, the study's preset. After
each batch of `ladder.promote_every` experiments, each rung's candidates are ranked by posterior mean
(analyze/posterior.py: all their runs at every rung, shrunk by the measured seed noise), and those in
the rung's top `ladder.top_fraction` whose current (highest) rung it is
  - get more seeds there, up to `ladder.seeds` for that rung, if they have fewer;
  - else move to the next rung with one seed (the baseline is evaluated there first, over the
    study's baseline seeds, stage explore: it is the rung's reference and its noise);
  - else, at the top rung, go to verify.py's FDR-controlled test (fresh seeds, BH across all).
A candidate that got seeds because one run looked good and then falls out of the top fraction stays
where it is: that is the demotion the ladder exists for.

`ladder.promote = "thompson"` changes only who gets the extra seeds: instead of the top fraction by
posterior mean getting all their seeds at once, each batch draws once from every unsettled
candidate's posterior and gives one more seed to those whose draw clears the promotion cutoff
(multiple-play Thompson sampling; analyze/posterior.py `thompson_picks`). Promotion to the next rung
and verification stay with the posterior mean's top fraction, so a draw can never promote anyone.

Crash safety. The batch's plan is committed (store/ladder.py) before any of its runs; each run is
committed as it finishes, keyed (architecture, stage, preset, seed); resume continues the open batch
and skips the runs already stored, so a kill -9 mid-batch loses and duplicates nothing. Runs the
ladder adds are stage `promote` (the first rung's exploration run stays `explore`), and `verify` for
the top rung's fresh verification seeds.

Scheduling. `BatchWork` lists an open batch's missing runs (each rung's baseline seeds before the
candidates there) and records them; the serial loop runs them one at a time (`execute`), the
parallel driver (parallel/driver.py, via `Ladder.runner`) puts them in its queue beside new
experiments, so a batch's seeds train on all the workers while new experiments are sampled.

Seeds: at a rung, a candidate's seeds are explore_seed, explore_seed + 1, ..., the baseline's
(common random numbers). Every evaluation goes through `Loop._evaluate(code, seed, preset)`.

What is not here: the posterior model (analyze/posterior.py), the verification test (verify.py) and
the batch storage (store/ladder.py). A study without `ladder.rungs` never calls `step` (loop.py).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archscout import quarantine
from archscout.faults import fault as _fault
from archscout.analyze.fitness import baseline_ref_from_runs
from archscout.analyze.posterior import Posterior, posteriors_from_db, thompson_picks
from archscout.config import Preset, get_preset
from archscout.records import RunResult
from archscout.store import ladder as store
from archscout.store.schema import Stage
from archscout.study import StudyHandle

EXPLORE, PROMOTE, VERIFY = Stage.EXPLORE, Stage.PROMOTE, Stage.VERIFY


class BaselineFailed(RuntimeError):
    """The study's baseline itself failed (at any rung): nothing can be scored against it."""


def study_posteriors(study: StudyHandle) -> dict[int, Posterior]:
    """Posterior of every searched candidate (and the baseline) over the study's rungs."""
    return posteriors_from_db(study.db, study.config.rungs(), study.config.fitness)[0]


def pool_ranking(study: StudyHandle) -> list[tuple[int, float, float]]:
    """(id, posterior mean, sd), best first: what the pool is re-ranked by (store/pool.py)."""
    posts = study_posteriors(study)
    # only candidates with a stored explore score are eligible (a quarantined or unscored one is not)
    scored = set(study.db.fitness_of(list(posts), EXPLORE, study.preset.name))
    rows = [p for p in posts.values() if p.arch_id in scored]
    rows.sort(key=lambda p: (-p.mean, -p.n, p.arch_id))
    return [(p.arch_id, p.mean, p.sd) for p in rows]


def rung_table(study: StudyHandle) -> dict[str, Any]:
    """How many candidates stand at each rung, and every batch's decisions (status, report, dashboard)."""
    rungs = study.config.rungs()
    at = current_rungs(study)
    verified = set(study.db.architectures_with_runs(VERIFY, rungs[-1]))
    counts = {r: sum(1 for v in at.values() if v == r) for r in rungs}
    batches = store.batches(study.db)
    seeded = {a["architecture_id"] for b in batches for a in b["plan"] if a["action"] == "seeds" and a["rung"] == rungs[0]}
    return {
        "rungs": rungs, "at_rung": counts, "verified": len(verified),
        "demoted": len(seeded - {a for a, r in at.items() if r != rungs[0]} - verified),
        "batches": [{"batch": b["batch"], "experiments_seen": b["experiments_seen"], "state": b["state"],
                     "plan": b["plan"]} for b in batches],
        "stop": _stop(study),
    }


def final_verdicts(study: StudyHandle) -> dict | None:
    """The verdicts at the top rung as verify.py decides them now (no new runs), or None when the
    ladder has verified nobody yet."""
    from archscout.verify import Verifier

    top = study.config.rungs()[-1]
    if not study.db.architectures_with_runs(VERIFY, top):
        return None
    verifier = Verifier(study)
    spec = verifier.preset(top)
    return verifier.decide(spec, verifier.baseline_runs(spec, verifier.seeds(study.config.verify.seeds)))


def _stop(study: StudyHandle) -> dict | None:
    row = store.last_stop(study.db)
    return None if row is None else {"rule": row["rule"], "reason": row["reason"], "experiments": row["experiments"]}


def current_rungs(study: StudyHandle) -> dict[int, str]:
    """Each searched candidate's current rung: the highest rung it has a search run at."""
    rungs = study.config.rungs()
    baseline = {a.id for a in study.db.architectures_by_origin("baseline")}
    out: dict[int, str] = {}
    for rung in rungs:
        for stage in (EXPLORE, PROMOTE):
            for arch_id in study.db.architectures_with_runs(stage, rung):
                if arch_id not in baseline:
                    out[arch_id] = rung
    return out


class Ladder:
    def __init__(self, loop):  # loop.Loop (not imported: the loop imports this module)
        self.loop, self.study, self.db = loop, loop.study, loop.db
        self.cfg = loop.cfg.ladder
        self.rungs = loop.cfg.rungs()
        self._presets: dict[str, Preset] = {loop.preset.name: loop.preset}
        # parallel/driver.py sets this: it takes each batch and schedules its runs; None = `execute`
        self.runner = None

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.rungs)

    def preset(self, name: str) -> Preset:
        if name not in self._presets:
            extra = self.loop.cfg.presets_file
            self._presets[name] = get_preset(name, None if extra is None else Path(extra))
        return self._presets[name]

    # -- the schedule -----------------------------------------------------------------------------

    def step(self, experiments_done: int, force: bool = False) -> dict | None:
        """Finish an open batch; then, when due (or `force`), decide and run the next. Returns the
        batch, None when nothing was due. With a `runner` (parallel/driver.py) the batch is handed
        to it and `step` returns at once: its runs go into the driver's queue beside new experiments."""
        batch = store.open_batch(self.db)
        if batch is None:
            last = store.last_batch(self.db)
            seen = last["experiments_seen"] if last else 0
            if not force and experiments_done - seen < self.cfg.promote_every:
                return None
            plan = self.decide()
            batch = store.add_batch(self.db, experiments_done, plan)
            _fault("commit:batch")
        (self.runner or self.execute)(batch)
        return batch

    def drain(self, experiments_done: int, max_batches: int = 100) -> int:
        """Batches with no new experiments until one plans nothing: the study ends with verdicts.
        (The parallel driver drains on its own: its batches finish asynchronously.)"""
        for n in range(max_batches):
            batch = self.step(experiments_done, force=True)
            if batch is None or not batch["plan"]:
                return n
        return max_batches

    # -- deciding ---------------------------------------------------------------------------------

    def decide(self, rng: random.Random | None = None) -> list[dict[str, Any]]:
        """The next batch's plan. `rng` feeds the Thompson draws (`ladder.promote = "thompson"`);
        by default it is seeded by the study's seed and the batch number, so a study replays."""
        posts = study_posteriors(self.study)
        at = current_rungs(self.study)
        held = quarantine.held_ids(self.db)
        verified = set(self.db.architectures_with_runs(VERIFY, self.rungs[-1]))
        thompson = self.cfg.promote == "thompson"
        rng = rng if rng is not None else self._batch_rng()
        plan = []
        for index, rung in enumerate(self.rungs):
            members = [posts[a] for a in posts if a in at and self._has_ok_run(a, rung)]
            members.sort(key=lambda p: (-p.mean, -p.n, p.arch_id))
            keep = math.ceil(self.cfg.top_fraction * len(members))
            want = self.cfg.seeds_at(index)

            def movable(arch_id: int, rung: str = rung) -> bool:
                return at.get(arch_id) == rung and arch_id not in held and not self._failed_at(arch_id, rung)

            for rank, post in enumerate(members[:keep], start=1):
                arch_id = post.arch_id
                if not movable(arch_id):
                    continue
                why = (f"posterior {post.mean:.4f} [{post.lo:.4f}, {post.hi:.4f}] from {post.n} run(s): rank "
                       f"{rank} of {len(members)} at {rung}, inside the top {self.cfg.top_fraction:g}")
                have = len(self._seeds(arch_id, rung))
                if have < want:
                    if thompson:
                        continue  # its seeds are the draw's to give (below)
                    action, target, seeds = "seeds", rung, self._seed_list(want)
                elif index + 1 < len(self.rungs):
                    action, target, seeds = "promote", self.rungs[index + 1], self._seed_list(1)
                elif self.cfg.verify and arch_id not in verified:
                    action, target, seeds = "verify", rung, []
                else:
                    continue
                plan.append({"architecture_id": arch_id, "action": action, "rung": target, "seeds": seeds,
                             "reason": why, "posterior": post.as_dict()})
            if thompson and members:
                plan += self._thompson_seeds(rung, members, keep, want, movable, rng)
        return plan

    def _thompson_seeds(self, rung: str, members: list[Posterior], keep: int, want: int, movable,
                        rng: random.Random) -> list[dict[str, Any]]:
        """One more seed each for up to `keep` candidates whose posterior draw clears the promotion
        cutoff (the posterior mean of the rung's last promotable rank): a candidate is picked with
        about the probability that it truly belongs above the cutoff, so seeds go where membership
        is uncertain, and one seed at a time, so the next batch re-decides on the narrower posterior.
        Candidates whose interval lies wholly below the cutoff are settled and never drawn, which
        bounds the seeds a drain can spend."""
        cutoff = members[keep - 1].mean
        open_ = [p for p in members if movable(p.arch_id) and len(self._seeds(p.arch_id, rung)) < want]
        out = []
        for post, draw, chance in thompson_picks(open_, cutoff, keep, rng):
            have = len(self._seeds(post.arch_id, rung))
            why = (f"thompson: posterior {post.mean:.4f} [{post.lo:.4f}, {post.hi:.4f}] from {post.n} run(s); a draw "
                   f"({draw:.4f}) cleared the promotion cutoff {cutoff:.4f} at {rung} (P(above) {chance:.2f}); "
                   f"seed {have + 1} of {want}")
            out.append({"architecture_id": post.arch_id, "action": "seeds", "rung": rung,
                        "seeds": self._seed_list(have + 1), "reason": why, "posterior": post.as_dict()})
        return out

    def _batch_rng(self) -> random.Random:
        last = store.last_batch(self.db)
        number = (last["batch"] if last else 0) + 1
        return random.Random(f"{self.loop.cfg.seed}:ladder:{number}")

    def _seed_list(self, count: int) -> list[int]:
        return [self.loop.cfg.explore_seed + i for i in range(count)]

    def _search_runs(self, arch_id: int, rung: str):
        return [r for r in self.db.runs_for(arch_id, preset=rung) if r.stage in (EXPLORE, PROMOTE)]

    def _seeds(self, arch_id: int, rung: str) -> set[int]:
        return {r.seed for r in self._search_runs(arch_id, rung) if r.status == "ok"}

    def _has_ok_run(self, arch_id: int, rung: str) -> bool:
        return bool(self._seeds(arch_id, rung))

    def _failed_at(self, arch_id: int, rung: str) -> bool:
        return any(r.status != "ok" for r in self._search_runs(arch_id, rung))

    # -- running ----------------------------------------------------------------------------------

    def execute(self, batch: dict[str, Any]) -> None:
        """Run the batch's missing runs one at a time, then verify and mark it done (serial loop)."""
        work = self.work(batch)
        while (job := work.take()) is not None:
            work.record(job, work.evaluate(job))
        work.finish()

    def work(self, batch: dict[str, Any]) -> BatchWork:
        """The batch's runs still to do and their bookkeeping (the parallel driver schedules them)."""
        return BatchWork(self, batch)

    def set_rung_refs(self, rung: str) -> None:
        """Set the monitor's references for candidates trained at `rung` from the baseline's stored
        runs there (the study's own preset has them from Loop.ensure_baseline)."""
        if rung == self.loop.preset.name or rung in self.loop.rung_refs:
            return
        runs = [r.result for r in self.db.runs_for(self.loop.baseline_id, EXPLORE, rung) if r.status == "ok"]
        ref = baseline_ref_from_runs(runs)
        first = next((r for r in runs if r.seed == self.loop.cfg.explore_seed), runs[0])
        references = {name: {"train_curve": [p.model_dump() for p in t.train_curve], "step_time_s": t.step_time_s}
                      for name, t in first.tasks.items()}
        self.loop.rung_refs[rung] = (int(ref.params_mean) if ref.params_mean else None, references)


@dataclass(frozen=True)
class LadderRun:
    """One evaluation an open batch still needs. `kind`: baseline (the rung's reference, stage
    explore), seeds / promote (stage promote) or verify (fresh seeds at the top rung, stage verify);
    `item`: its index in the plan (-1 for the baseline, shared by every item at the rung)."""

    kind: str
    arch_id: int
    rung: str
    seed: int
    item: int

    @property
    def stage(self) -> str:
        return EXPLORE if self.kind == "baseline" else VERIFY if self.kind == "verify" else PROMOTE


class BatchWork:
    """What an open batch still has to run, and its bookkeeping; the same for the serial loop
    (`Ladder.execute`: one run at a time) and parallel/driver.py (runs in free worker slots).

    `take()` hands out the next run that may start: a rung's baseline seeds come before any
    candidate's run there, since they set the monitor's references for it. `evaluate(job)` trains
    it (any thread); `record(job, result)` commits it (the scheduling thread) — a failed seed or
    promote run drops that candidate's runs not yet started (its climb stops), a failed baseline run
    raises BaselineFailed. When `done()`, `finish()` decides the verification (verify.py, on the
    stored verify runs) and marks the batch done. Runs already stored (a resumed batch) are never
    planned again, and a run in flight is handed out once, so nothing is trained twice."""

    def __init__(self, ladder: Ladder, batch: dict[str, Any]):
        self.ladder, self.batch, self.loop, self.db = ladder, batch, ladder.loop, ladder.db
        self.number = batch["batch"]
        self.todo: list[LadderRun] = []
        self.running: set[LadderRun] = set()
        self.to_verify: list[int] = []
        self._plan()

    def _plan(self) -> None:
        loop, db = self.loop, self.db
        top = self.ladder.rungs[-1]
        baseline_rungs: set[str] = set()
        for index, item in enumerate(self.batch["plan"]):
            arch_id, rung = item["architecture_id"], item["rung"]
            if rung != loop.preset.name and rung not in baseline_rungs:
                baseline_rungs.add(rung)
                have = {r.seed for r in db.runs_for(loop.baseline_id, EXPLORE, rung) if r.status == "ok"}
                self.todo += [LadderRun("baseline", loop.baseline_id, rung, seed, -1) for seed in
                              (loop.cfg.explore_seed + i for i in range(loop.cfg.baseline_seeds)) if seed not in have]
            if item["action"] == "verify":
                from archscout.verify import Verifier

                self.to_verify.append(arch_id)
                have = {r.seed for r in db.runs_for(arch_id, VERIFY, top)}
                seeds = Verifier(self.ladder.study).seeds(loop.cfg.verify.seeds)
                self.todo += [LadderRun("verify", arch_id, top, s, index) for s in seeds if s not in have]
                continue
            runs = self.ladder._search_runs(arch_id, rung)
            if any(r.status != "ok" for r in runs):
                continue  # a run of this item failed before a restart: its climb stopped there
            have = {r.seed for r in runs}
            self.todo += [LadderRun(item["action"], arch_id, rung, s, index) for s in item["seeds"] if s not in have]

    def take(self) -> LadderRun | None:
        """The next run that may start now (None: none until a running one is recorded, or done)."""
        waiting = {j.rung for j in (*self.todo, *self.running) if j.kind == "baseline"}
        for job in self.todo:
            if job.kind == "baseline" or job.rung not in waiting:
                self.todo.remove(job)
                self.running.add(job)
                if job.kind != "baseline":
                    self.ladder.set_rung_refs(job.rung)
                return job
        return None

    def evaluate(self, job: LadderRun) -> RunResult:
        item = self.batch["plan"][job.item]["action"] if job.item >= 0 else "baseline"
        arch = self.db.architecture(job.arch_id)
        if job.kind == "baseline":
            self.loop.events({"stage": "baseline", "rung": job.rung, "seed": job.seed, "of": self.loop.cfg.baseline_seeds})
        else:
            self.loop.events({"stage": f"ladder {item}", "arch": arch.name, "rung": job.rung, "seed": job.seed})
        return self.loop._evaluate(arch.code, job.seed, preset=self.ladder.preset(job.rung))

    def record(self, job: LadderRun, result: RunResult) -> None:
        self.running.discard(job)
        if job.kind == "baseline" and not result.ok:
            raise BaselineFailed(f"the baseline failed at rung {job.rung} on seed {job.seed}: {result.failure.message}")
        self.db.add_run(job.arch_id, job.stage, result)
        if job.kind in ("seeds", "promote"):
            _fault("commit:promote")
            if not result.ok:
                self.todo = [j for j in self.todo if j.item != job.item]

    def done(self) -> bool:
        return not self.todo and not self.running

    def finish(self) -> None:
        if self.to_verify:
            from archscout.verify import Verifier

            # every verify seed is stored (take/record): this only decides, with BH across all
            self.loop.events({"stage": "ladder verify", "n": len(self.to_verify)})
            Verifier(self.study, self.loop.events).run(preset=self.ladder.rungs[-1], ids=self.to_verify)
        store.finish_batch(self.db, self.number)

    @property
    def study(self) -> StudyHandle:
        return self.ladder.study
