"""Stopping rules for `archscout run`, beside `--budget` (experiments) and `--hours` (wall time).

- `--target-fitness X`: stop once the posterior *lower bound* (analyze/posterior.py, 90 % interval)
  of the best candidate reaches X: a single lucky run cannot trigger it, a candidate whose several
  runs agree can.
- `--patience N`: stop after N experiments in a row that did not raise the posterior mean of the best
  candidate. The count is the study's, not this `run`'s: on its first check the stopper replays the
  study's history (analyze/posterior.py `best_history`: the posterior best as it stood before each
  experiment started), so a study killed or stopped and resumed stops at the experiment an
  uninterrupted run would have stopped at.
- `--cpu-hours H`: stop once the study's runs have used H CPU-hours, summed from the supervisor's
  measurement of each run (`RunResult.trust["cpu_s"]`; a wall-clock-free, contention-free budget).

The first rule that fires is recorded in the database (store/ladder.py `study_stops`) and printed.
`check_rules` turns contradictory or impossible settings into one line naming the option. What is
not here: the loop's budget and deadline (loop.py) and the posterior itself.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from archscout.analyze.posterior import best_history, posteriors_from_db
from archscout.store import ladder as store


class StopRules(BaseModel):
    target_fitness: float | None = None
    patience: int | None = None
    cpu_hours: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.target_fitness, self.patience, self.cpu_hours))


def check_rules(rules: StopRules, budget: int | None = None, done: int = 0, hours: float | None = None) -> str | None:
    """One line naming the offending option, or None. `budget`/`done`: the study's budget and the
    experiments it has, so that a patience no run could reach is refused rather than ignored."""
    if rules.target_fitness is not None and not 0.0 < rules.target_fitness < 1.0:
        return f"--target-fitness: fitness lies in (0, 1); got {rules.target_fitness}"
    if rules.patience is not None and rules.patience < 1:
        return f"--patience: needs at least 1 experiment; got {rules.patience}"
    if rules.patience is not None and budget is not None and rules.patience >= budget - done:
        return (f"--patience {rules.patience}: the budget leaves only {budget - done} experiment(s), so it "
                "could never fire; lower it or raise --budget")
    if rules.cpu_hours is not None and rules.cpu_hours <= 0:
        return f"--cpu-hours: must be > 0; got {rules.cpu_hours}"
    if hours is not None and hours <= 0:
        return f"--hours: must be > 0; got {hours}"
    return None


def budget_and_done(folder, overrides: dict) -> tuple[int, int]:
    """(the study's budget, experiments it already has), read without writing anything: a folder
    without a study database has none (a study kept in PostgreSQL is counted as 0 here)."""
    from pathlib import Path

    from archscout.store.db import StudyDB
    from archscout.store.engine import make_read_only_engine
    from archscout.study import load_config

    config = load_config(Path(folder), overrides)
    db_file = Path(folder) / "study.db"
    if config.db_url or not db_file.exists():
        return config.budget, 0
    # read-only: the checks come before the study is opened, so an old schema is not migrated here
    db = StudyDB(make_read_only_engine(db_file))
    try:
        return config.budget, sum(db.experiments.counts_by_state().values())
    finally:
        db.close()


def cpu_hours_used(db) -> float:
    """CPU-hours of every stored run (probes and training as the supervisor measured them)."""
    total = 0.0
    for run in db.run_timeline():
        total += float(run.result.trust.get("cpu_s") or 0.0)
    return total / 3600.0


class Stopper:
    """Asked before each new experiment; `reason` says which rule fired (recorded once)."""

    def __init__(self, loop, rules: StopRules, deadline: float | None = None):
        self.loop, self.rules, self.deadline = loop, rules, deadline
        self.reason = ""
        self.rule = ""
        self.best: float | None = None
        self.best_at = 0  # experiments done when the posterior best last rose
        self.since = 0  # experiments since then
        self._replayed = False

    def out_of_compute(self) -> bool:
        """A wall-time or CPU budget ran out: no further work (the ladder does not drain)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            return True
        return self.rule == "cpu_hours"

    def check(self) -> bool:
        if self.reason:
            return True
        if not self.rules.any:
            return False
        db, cfg = self.loop.db, self.loop.cfg
        done = self.loop.experiments_counted()
        if self.rules.cpu_hours is not None:
            used = cpu_hours_used(db)
            if used >= self.rules.cpu_hours:
                return self._stop("cpu_hours", f"compute budget: {used:.3f} CPU-hours used of {self.rules.cpu_hours:g}", done)
        if self.rules.target_fitness is None and self.rules.patience is None:
            return False
        baseline = {a.id for a in db.architectures_by_origin("baseline")}
        posts = [p for p in posteriors_from_db(db, cfg.rungs(), cfg.fitness)[0].values() if p.arch_id not in baseline]
        best = max(posts, key=lambda p: p.mean, default=None)
        if self.rules.target_fitness is not None and best is not None and best.lo >= self.rules.target_fitness:
            return self._stop("target_fitness", f"target fitness reached: #{best.arch_id}'s posterior lower bound "
                              f"{best.lo:.4f} >= {self.rules.target_fitness:g} (mean {best.mean:.4f}, {best.n} runs)", done)
        if self.rules.patience is not None:
            if not self._replayed:
                self._replay(done)
            self._observe(best.mean if best is not None else None, done)
            if self.best is not None and self.since >= self.rules.patience:
                return self._stop("patience", f"patience: the posterior best ({self.best:.4f}, reached after "
                                  f"experiment {self.best_at}) did not improve in {self.since} experiments", done)
        return False

    def _observe(self, best: float | None, done: int) -> None:
        if best is not None and (self.best is None or best > self.best):
            self.best, self.best_at = best, done
        self.since = done - self.best_at if self.best is not None else 0

    def _replay(self, done: int) -> None:
        """The study's past as the checks before each of its experiments saw it: the posterior best
        from the runs stored before experiment k+1 started is what the check at k done read."""
        self._replayed = True
        if done == 0:
            return
        db, cfg = self.loop.db, self.loop.cfg
        exps = sorted(db.experiments.recent(limit=done), key=lambda e: e.seq)
        cuts = [e.started_at for e in exps]  # cut k: before experiment k+1, with k experiments done
        for k, best in enumerate(best_history(db, cfg.rungs(), cfg.fitness, cuts)):
            self._observe(best, k)

    def _stop(self, rule: str, reason: str, done: int) -> bool:
        self.rule, self.reason = rule, reason
        store.record_stop(self.loop.db, rule, reason, done)
        self.loop.events({"stage": "stop", "note": reason})
        return True
