"""Quarantine: a run that looks too good to be true earns no fitness until a stricter re-check.

The parent computes every scored number itself and checks causality on the trained weights
(evaluate/scoring.py), but a cheat those checks do not see can still show up as a loss implausibly
far below the baseline's. `assess` names the reasons to hold a run:

  loss     the validation loss is more than `FitnessConfig.leak_threshold` (10 %, ASI-Arch's rule)
           below the baseline's mean;
  noise    it is more than `NOISE_SIGMAS` of the baseline's seed standard deviation below it and
           at least `NOISE_MIN_DELTA` relative (the ASI-Arch rule in units of measured noise; needs
           two or more baseline seeds);
  compute  the supervisor measured more than `COMPUTE_RATIO` x the baseline's CPU seconds per
           training step (a run that trained on more than its budget).

A held architecture gets a row in the `quarantine` table (state "quarantined") and no score, so it
is never ranked into the pool, never drawn as a parent (store/pool.py also filters it) and never
verified (verify.py filters it). `recheck` evaluates it again in fresh processes over
`RECHECK_SEEDS` seeds never used elsewhere, with several times the perturbed copies and copies at
shorter lengths; if every re-run passes and none needs too much compute, the row becomes "cleared"
and the exploration run is scored; a failure there makes it "confirmed" (never scored).

What this is not: proof of honesty. A cleared architecture passed checks that a candidate which
remembers earlier inputs can evade (README, threat model); its quarantine history stays visible.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import select, update

from archscout.analyze.fitness import BaselineRef, FitnessConfig, baseline_ref_from_runs, compute_fitness, delta_loss
from archscout.records import RunResult
from archscout.store.db import StudyDB
from archscout.store.pool import CLEARED, CONFIRMED, HELD, QUARANTINED, held_ids  # noqa: F401 - re-exported
from archscout.store.schema import quarantine as table
from archscout.store.schema import Stage, utcnow

EXPLORE = Stage.EXPLORE
RECHECK = Stage.RECHECK
NOISE_SIGMAS = 20.0
NOISE_MIN_DELTA = 0.05  # architectures legitimately differ by many seed deviations; 5 % is rare at any size
# CPU seconds inflate on an oversubscribed machine (OpenMP threads spin while they wait): a `tiny`
# run measured 4.6 x its unloaded CPU per step at load 5 on 2 cores, so the rule is loose
COMPUTE_RATIO = 10.0
RECHECK_SEED_BASE = 2000  # above exploration (< 1000) and verification (1000..) seeds
RECHECK_SEEDS = 2
REPEAT_OFFSET = 500  # the repeat of seed s is stored as seed s + 500 (trained with s)
REPLAY_RTOL = 1e-6
RECHECK_CHECKS = {"checks": 8, "checks_final": 16, "lengths": (0.25, 0.5)}


def baseline_cpu_per_step(runs: list[RunResult]) -> float | None:
    values = [r.trust.get("cpu_s_per_step") for r in runs if r.ok and r.trust.get("cpu_s_per_step")]
    return sum(values) / len(values) if values else None


def assess(result: RunResult, ref: BaselineRef, config: FitnessConfig | None = None,
           cpu_per_step: float | None = None) -> list[str]:
    """The reasons to quarantine a successful run (empty: none), one readable line each."""
    config = config or FitnessConfig()
    reasons = []
    if result.val_loss is not None:
        d = delta_loss(result.val_loss, ref.val_loss_mean)
        if d > config.leak_threshold:
            reasons.append(f"loss: val loss {result.val_loss:.4f} is {d:.1%} below the baseline's "
                           f"{ref.val_loss_mean:.4f} (limit {config.leak_threshold:.0%})")
        gap = ref.val_loss_mean - result.val_loss
        if ref.n >= 2 and ref.val_loss_std > 0 and gap > NOISE_SIGMAS * ref.val_loss_std and d > NOISE_MIN_DELTA:
            reasons.append(f"noise: val loss is {gap / ref.val_loss_std:.0f} baseline seed deviations below its mean "
                           f"(limit {NOISE_SIGMAS:.0f})")
    used = result.trust.get("cpu_s_per_step")
    if used and cpu_per_step and used > COMPUTE_RATIO * cpu_per_step:
        reasons.append(f"compute: {used:.3f} CPU s per step, {used / cpu_per_step:.1f} x the baseline's "
                       f"{cpu_per_step:.3f} (limit {COMPUTE_RATIO:g} x)")
    return reasons


# -- storage --------------------------------------------------------------------------------------


def hold(db: StudyDB, arch_id: int, preset: str, reasons: list[str], evidence: dict | None = None, *,
         conn=None) -> None:
    now = utcnow()
    values = {"architecture_id": arch_id, "preset": preset, "state": QUARANTINED, "reason": "; ".join(reasons),
              "evidence": evidence, "created_at": now, "updated_at": now}
    with db.writing(conn) as c:
        db.upsert(c, table, values, key=("architecture_id", "preset"), replace=True)


def entry(db: StudyDB, arch_id: int, preset: str | None = None, *, conn=None) -> dict[str, Any] | None:
    stmt = select(table).where(table.c.architecture_id == arch_id)
    if preset is not None:
        stmt = stmt.where(table.c.preset == preset)
    row = db.fetch_one(stmt.order_by(table.c.id.desc()).limit(1), conn)
    return dict(row._mapping) if row is not None else None


def entries(db: StudyDB, *, conn=None) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in db.fetch_all(select(table).order_by(table.c.id), conn)]


def _inconsistent(seed: int, a: RunResult, b: RunResult) -> list[str]:
    if not (a.ok and b.ok):
        return []
    out = []
    first, second = a.trust.get("final_batches") or {}, b.trust.get("final_batches") or {}
    for task in sorted(set(first) | set(second)):
        x, y = first.get(task, []), second.get(task, [])
        bad = [i for i, (u, v) in enumerate(zip(x, y)) if abs(u - v) > REPLAY_RTOL * max(1.0, abs(u))]
        if len(x) != len(y) or bad:
            i = bad[0] if bad else 0
            out.append(f"seed {seed}: task {task}: held-out batch {i} scored {x[i] if x else None} and "
                       f"{y[i] if y else None} in two fresh processes (the model's outputs depend on earlier calls)")
    return out


def _set_state(db: StudyDB, arch_id: int, preset: str, state: str, note: str, evidence: dict, conn) -> None:
    conn.execute(update(table).where(table.c.architecture_id == arch_id, table.c.preset == preset)
                 .values(state=state, reason=note, evidence=evidence, updated_at=utcnow()))


# -- the re-check ---------------------------------------------------------------------------------


def recheck(study, arch_id: int, *, seeds: int = RECHECK_SEEDS, events: Callable[[dict], None] | None = None,
            evaluate=None) -> dict[str, Any]:
    """Re-evaluate a quarantined architecture strictly; clear it (and score it) or confirm it."""
    from archscout.evaluate.runner import evaluate as evaluate_code

    db, preset = study.db, study.preset
    events = events or (lambda e: None)
    held = entry(db, arch_id, preset.name)
    if held is None or held["state"] != QUARANTINED:
        raise ValueError(f"architecture #{arch_id} is not quarantined at preset {preset.name}")
    arch = db.architecture(arch_id)
    evaluate = evaluate or (lambda code, seed: evaluate_code(
        code, preset, seed, device=study.config.device, checks=RECHECK_CHECKS, progress=events))
    base_arch = db.architectures_by_origin("baseline")[0]
    base_runs = [r.result for r in db.runs_for(base_arch.id, EXPLORE, preset.name) if r.status == "ok"]
    ref = baseline_ref_from_runs(base_runs)
    cpu = baseline_cpu_per_step(base_runs)
    done = {r.seed: r.result for r in db.runs_for(arch_id, RECHECK, preset.name)}
    results, problems = [], []
    # each seed twice, in two fresh processes whose perturbation schedules differ: a stateless model
    # trains to the same weights and scores every held-out batch identically in both; one that
    # remembers earlier inputs (and replays outputs to pass the perturbation checks) does not
    for seed in range(RECHECK_SEED_BASE, RECHECK_SEED_BASE + seeds):
        pair = []
        for stored in (seed, seed + REPEAT_OFFSET):
            if stored not in done:
                events({"stage": "recheck", "arch": arch.name, "seed": seed})
                result = evaluate(arch.code, seed)
                result.seed = stored  # the repeat is stored under its own key, trained with `seed`
                done[stored] = result
                db.add_run(arch_id, RECHECK, result)
            pair.append(done[stored])
        results += pair
        problems += _inconsistent(seed, *pair)
    problems += [f"seed {r.seed}: {r.failure.kind.value}: {r.failure.message}" for r in results if not r.ok]
    problems += [f"seed {r.seed}: {why}" for r in results if r.ok
                 for why in assess(r, ref, study.config.fitness, cpu) if why.startswith("compute")]
    evidence = {"seeds": [r.seed for r in results], "val_loss": [r.val_loss for r in results],
                "checks": [r.trust.get("causality_checks") for r in results], "before": held["reason"]}
    with db.transaction() as tx:
        if problems:
            _set_state(db, arch_id, preset.name, CONFIRMED, "re-check failed: " + "; ".join(problems), evidence, tx)
            return {"state": CONFIRMED, "problems": problems, **evidence}
        _set_state(db, arch_id, preset.name, CLEARED, f"cleared by re-check (was: {held['reason']})", evidence, tx)
        explore = next(r for r in db.runs_for(arch_id, EXPLORE, preset.name, conn=tx) if r.status == "ok")
        breakdown = compute_fitness(explore.result, ref, study.config.fitness)
        db.add_score(arch_id, EXPLORE, preset.name, breakdown.fitness, breakdown.model_dump(mode="json"),
                     ref.model_dump(mode="json"), conn=tx)
    return {"state": CLEARED, "problems": [], "fitness": breakdown.fitness, **evidence}
