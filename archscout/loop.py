"""The discovery loop: one experiment as one readable function, and a study that resumes.

    sample -> propose (+ novelty) -> check (probes) -> evaluate (train) -> score -> analyze -> done

Probes and training run in one sandboxed child (evaluate.runner.evaluate): `check` starts it, and the
`checked` state commits, with the probe report, when the child reports passed probes; the training
result it goes on to produce is `evaluate`'s input. A study resumed in `checked` trains the stored
report's file without probing it again.

Each stage's output and the experiment's state transition are committed in one transaction, so a
process killed at any point leaves either the old state or the new one, never half of both; on the
next `run` an unfinished experiment continues from its last committed state and nothing is counted
twice. Candidate code runs only in the sandboxed worker (through evaluate.runner). The baseline is
evaluated first over several seeds: it is both the fitness reference and the noise floor.

Each stage asks the study's research team (team.py: the offline team, or the LLM agents of
agents/team.py) the same questions, so the loop has one path. With LLM agents the agents answer: a
probe failure goes back to the planner and a failed training run to the debugger within the stage
(the experiment is revised to the new file, the old one keeps its failed run), the judge's score
enters fitness and the Analyst's text joins the statistical one. An LLM budget reached stops the
study with the open experiment resumable.

Around the experiments: after each one (`after`), a due ladder batch (ladder.py) gives the best
candidates of each rung more seeds and the next rung, and the stopping rules (stopping.py) are asked
before the next is sampled; `wind_down` records why the study stopped and drains the ladder. With
`--workers N` the scheduler of parallel/driver.py replaces `_run` and `_evaluate` runs on Ray; the
stages are the same.
"""

from __future__ import annotations

import ast
import hashlib
import random
import time
from functools import partial
from pathlib import Path
from typing import Callable

from archscout import quarantine
from archscout.faults import fault as _fault
from archscout.analyze.analyst import analyze
from archscout.analyze.fitness import BASELINE_JUDGE, BaselineRef, baseline_ref_from_runs, compute_fitness
from archscout.analyze.posterior import best_posterior
from archscout.config import Preset
from archscout.evaluate.runner import OnChecked, evaluate
from archscout.ladder import BaselineFailed, Ladder, pool_ranking
from archscout.stopping import StopRules, Stopper
from archscout.propose.base import Proposal, ProposalContext, Proposer
from archscout.agents.base import BudgetExhausted, LLMInvalid, Repeated
from archscout.propose.novelty import MotivationIndex, normalized_hash, normalized_tree_hash
from archscout.records import ArchView, RunResult
from archscout.space import BASELINES, baseline_path
from archscout.store import pool
from archscout.store.claims import Claims
from archscout.store.rows import Experiment
from archscout.store.views import arch_views
from archscout.store.schema import Stage
from archscout.study import StudyHandle
from archscout.team import OfflineTeam, ResearchTeam

Events = Callable[[dict], None]
EXPLORE = Stage.EXPLORE


# BaselineFailed lives in ladder.py (the ladder evaluates the baseline at its rungs too)


class Loop:
    def __init__(self, study: StudyHandle, proposer: Proposer | None = None, events: Events | None = None,
                 team=None):
        self.study, self.db, self.cfg, self.preset = study, study.db, study.config, study.preset
        self.exps = self.db.experiments
        # team: the LLM agents (agents.team.Team) when proposer = "llm", else the offline team; the
        # stages below ask it the same questions either way (team.py)
        self.team: ResearchTeam = team if team is not None else OfflineTeam(proposer)
        self.proposer = self.team.proposer
        self.events = events or (lambda event: None)
        self.policy = self.cfg.pool_policy(self.preset)
        self.baseline_id: int | None = None
        self.stopped_by = ""  # why run() stopped before the budget (an LLM budget), if it did
        self.ref: BaselineRef | None = None
        self.baseline_cpu: float | None = None  # supervisor-measured CPU s per step (quarantine.py)
        self.references: dict[str, dict] = {}
        self.motivations: MotivationIndex | None = None
        self._trained: dict[int, RunResult] = {}  # experiment id -> the run of the child `check` started
        self.rung_refs: dict[str, tuple[int | None, dict]] = {}  # ladder rung -> (baseline params, references)
        self.ladder = Ladder(self)
        self.stop_rules = StopRules()
        # which open experiments this driver works on (store/claims.py): two drivers on one study
        # never resume the same one
        self.claims = Claims(self.db)
        # parallel/driver.py sets these for `--workers N > 1`: evaluations run as Ray tasks and
        # its scheduler replaces _run; None = the in-process path
        self.remote: Callable[..., RunResult] | None = None
        self.scheduler: Callable[[int, float | None], None] | None = None

    # -- baseline ---------------------------------------------------------------------------------

    def ensure_baseline(self) -> BaselineRef:
        """Evaluate the baseline over K seeds (only the missing ones) and seed the pool with it."""
        builtin = self.cfg.baseline in BASELINES
        path = baseline_path(self.cfg.baseline) if builtin else Path(self.cfg.baseline)
        code = path.read_text()
        # A built-in baseline's text can change between archscout versions without changing the
        # model (its helpers moved to space/layers.py, for one): a study made by an older version
        # keeps the baseline it measured, so a resume does not train it again as a new architecture.
        kept = [a for a in self.db.architectures_by_origin("baseline") if a.name == path.stem] if builtin else []
        if kept:
            self.baseline_id, code = kept[0].id, kept[0].code
        else:
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
        self.baseline_cpu = quarantine.baseline_cpu_per_step(runs)
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
        version = self.db.latest_pool_version()
        parent_id, reference_ids = pool.sample(self.db, self.policy, rng, preset=self.preset.name)
        with self.db.transaction() as tx:
            exp = self.exps.start(proposer=self.proposer.name, parent_id=parent_id, reference_ids=reference_ids,
                                  pool_version=version.version if version else None, conn=tx)
            self.claims.take(exp.id, conn=tx)
        return exp

    def propose(self, exp: Experiment) -> Experiment:
        ctx = self._context(exp)
        try:
            proposal, norm, note = self._proposal(exp, ctx, self._rng(exp.seq, "propose"))
        except LLMInvalid as err:
            return self.exps.fail(exp.id, "llm_invalid", str(err))
        if proposal is None:
            return self.exps.fail(exp.id, norm, ctx.feedback)
        with self.db.transaction() as tx:
            arch_id = self._add_proposal(exp, proposal, norm, tx)
            exp = self.exps.advance(exp.id, "proposed", architecture_id=arch_id, note=note, conn=tx)
            _fault("commit:proposed")
        self._motivation_index().add(arch_id, proposal.motivation)
        return exp

    def _context(self, exp: Experiment) -> ProposalContext:
        views = self._views([exp.parent_id, *exp.reference_ids])
        return ProposalContext(
            parent=views.get(exp.parent_id), references=[views[i] for i in exp.reference_ids if i in views],
            baseline=self.ref.model_dump() if self.ref else {}, experiment_seq=exp.seq,
        )

    def _proposal(self, exp: Experiment, ctx: ProposalContext, rng: random.Random):
        """(proposal, normalised hash, note) or (None, failure reason, "") after max_attempts.

        A rejected attempt (syntax error, same code as an earlier architecture, a repeat the LLM
        judge could not diversify away) goes back to the proposer as `ctx.feedback`.
        """
        reason = "duplicate"
        for attempt in range(self.cfg.novelty.max_attempts):
            ctx.attempt = attempt
            proposal = self.team.propose(exp.id, ctx, rng)
            proposal, note = self.team.review(exp.id, proposal)
            try:
                tree = ast.parse(proposal.code)
            except SyntaxError as err:
                reason, ctx.feedback = "invalid_code", f"syntax error at line {err.lineno}: {err.msg}"
                continue
            norm = normalized_tree_hash(tree)  # the syntax check's tree, not a second parse
            twins = self.db.architectures_by_norm_hash(norm)
            if twins:
                reason, ctx.feedback = "duplicate", f"same code as architecture #{twins[0].id} ({twins[0].name})"
                continue
            index = self._motivation_index()

            def similar(text: str = proposal.motivation) -> list[tuple[int, str]]:
                hits = self._motivation_index().most_similar(text, 3)
                return [(i, self.db.architecture(i).motivation) for i, _ in hits]

            try:
                proposal, diversified = self.team.novelty(exp.id, ctx, proposal, similar)
            except Repeated as err:
                reason, ctx.feedback = "repeated", f"judged a repeat of earlier work: {err}"
                continue
            if diversified:
                note = "; ".join(filter(None, [note, diversified]))
                try:
                    norm = normalized_hash(proposal.code)
                except SyntaxError as err:
                    reason, ctx.feedback = "invalid_code", f"syntax error at line {err.lineno}: {err.msg}"
                    continue
            near = index.is_near_duplicate(proposal.motivation)
            if near[0]:
                note = "; ".join(filter(None, [note, f"near-duplicate motivation of #{near[1]} ({near[2]:.2f})"]))
            return proposal, norm, note
        return None, reason, ""

    def _add_proposal(self, exp: Experiment, proposal, norm: str, tx, parent_id: int | None = None) -> int:
        arch_id = self.db.add_architecture(
            proposal.code, name=proposal.name, origin=proposal.origin, norm_hash=norm,
            parent_id=exp.parent_id if parent_id is None else parent_id, motivation=proposal.motivation,
            genome=proposal.genome, experiment_id=exp.id, conn=tx,
        )
        # the planner's and reviewer's calls were made before the architecture existed
        self.db.ledger.attach_architecture(exp.id, arch_id, conn=tx)
        return arch_id

    def check(self, exp: Experiment) -> Experiment:
        """Probe and train the candidate in one child; `checked` commits as soon as the probes pass.
        A probe failure goes back to the proposer (`team.probe_attempts` times)."""
        replans = self.team.probe_attempts
        on_checked = partial(self._checked, exp.id)
        for attempt in range(replans + 1):
            arch = self.db.architecture(exp.architecture_id)
            probed = self._evaluate(arch.code, self.cfg.explore_seed, on_checked=on_checked)
            if self.exps.get(exp.id).state == "checked":  # committed from the child's probe report
                self._trained[exp.id] = probed  # the training run that followed the probes
                return self.exps.get(exp.id)
            reason = f"{probed.failure.kind.value}: {probed.failure.message}"
            if attempt == replans:
                return self._fail_with_run(exp, arch.id, probed)
            ctx = self._context(exp)
            ctx.feedback = f"the automatic probes rejected '{arch.name}' ({reason}); fix that in a new file"
            try:
                proposal, norm, note = self._proposal(exp, ctx, self._rng(exp.seq, f"replan{attempt}"))
            except LLMInvalid as err:
                return self._fail_with_run(exp, arch.id, probed, f"{reason} (planner: {err})")
            if proposal is None:
                return self._fail_with_run(exp, arch.id, probed)
            with self.db.transaction() as tx:
                # the failed run and the move to the new file commit together: a resumed study
                # neither loses the failure nor probes the old file twice
                self.db.add_run(arch.id, EXPLORE, probed, conn=tx)
                arch_id = self._add_proposal(exp, proposal, norm, tx)
                exp = self.exps.revise(exp.id, arch_id, f"planner retry {attempt + 1} after probe failure: {reason}"[:500], conn=tx)
            self._motivation_index().add(arch_id, proposal.motivation)
        raise AssertionError("unreachable")

    def evaluate(self, exp: Experiment) -> Experiment:
        """Train the candidate; a failed run goes to the debugger (`team.debug_attempts` times, recorded)."""
        attempts = self.team.debug_attempts
        on_checked = partial(self._checked, exp.id)
        for attempt in range(attempts + 1):
            arch = self.db.architecture(exp.architecture_id)
            # trained by the child `check` started; after a restart, or for a debugger's fix, trained
            # again, without probes when the stored report is this file's (the runner checks that)
            result = self._trained.pop(exp.id, None) or self._evaluate(
                arch.code, self.cfg.explore_seed, probed=self._stored_probes(exp),
                on_checked=on_checked)
            _fault("after:train")
            if result.ok or attempt == attempts:
                break
            try:
                code, diagnosis = self.team.debug(exp.id, arch.id, arch.code, result, attempt + 1)
                norm = normalized_hash(code)
            except LLMInvalid as err:
                return self._fail_with_run(exp, arch.id, result, f"{result.failure.message} (debugger: {err})")
            except SyntaxError as err:
                return self._fail_with_run(
                    exp, arch.id, result, f"{result.failure.message} (debugger returned invalid Python: {err.msg})")
            if self.db.architectures_by_norm_hash(norm):
                return self._fail_with_run(
                    exp, arch.id, result, f"{result.failure.message} (debugger returned a file that exists already)")
            fixed = Proposal(name=f"{arch.name}-fix{attempt + 1}", motivation=arch.motivation, code=code,
                             origin=arch.origin)
            with self.db.transaction() as tx:
                self.db.add_run(arch.id, EXPLORE, result, conn=tx)
                arch_id = self._add_proposal(exp, fixed, norm, tx, parent_id=arch.parent_id)
                note = f"debug attempt {attempt + 1} after {result.failure.kind.value}: {diagnosis}"
                exp = self.exps.revise(exp.id, arch_id, note[:500], conn=tx)
        with self.db.transaction() as tx:
            self.db.add_run(arch.id, EXPLORE, result, conn=tx)
            if not result.ok:
                return self.exps.fail(exp.id, result.failure.kind.value, result.failure.message, conn=tx)
            exp = self.exps.advance(exp.id, "evaluated", conn=tx)
            _fault("commit:evaluated")
        return exp

    def score(self, exp: Experiment) -> Experiment:
        run = self._explore_run(exp.architecture_id)
        reasons = quarantine.assess(run.result, self.ref, self.cfg.fitness, self.baseline_cpu)
        if reasons and exp.architecture_id != self.baseline_id:
            # too good to be true: no fitness, no parent, no verification until `archscout recheck`
            with self.db.transaction() as tx:
                quarantine.hold(self.db, exp.architecture_id, self.preset.name, reasons,
                                {"val_loss": run.result.val_loss, "trust": run.result.trust}, conn=tx)
                return self.exps.fail(exp.id, "quarantined", "; ".join(reasons)[:500], conn=tx)
        judge = numbers = None
        if self.cfg.fitness.judge == "llm":
            arch = self.db.architecture(exp.architecture_id)
            # the rubric's 10/10 anchor: the best explored design so far, when it is not the baseline
            top = self.db.top_scores(EXPLORE, self.preset.name, 1)
            best = top[0][0] if top and top[0][0] not in (arch.id, self.baseline_id) else None
            reference = self.db.architecture(best).code if best else None
            judge, numbers = self.team.judge(exp.id, arch.id, arch.code, run.result, self.ref, reference)
        with self.db.transaction() as tx:
            if numbers is not None:
                text = "rubric judge" if judge is not None else "judge failed: fitness records it as missing"
                self.db.add_analysis(exp.architecture_id, "judge", text, numbers, conn=tx)
            self._store_score(exp.architecture_id, run.result, conn=tx, judge=judge)
            exp = self.exps.advance(exp.id, "scored", conn=tx)
            _fault("commit:scored")
        return exp

    def analyze(self, exp: Experiment) -> Experiment:
        arch = self.db.architecture(exp.architecture_id)
        # the lineage's ids first, then every view in one batch of set-based reads (store/views.py)
        grand_id = self.db.parent_ids([arch.parent_id]).get(arch.parent_id) if arch.parent_id else None
        sibling_ids = [c for c in self.db.scored_children(arch.parent_id, EXPLORE, self.preset.name)
                       if c != arch.id] if arch.parent_id else []
        views = self._views([arch.id, arch.parent_id, grand_id, *sibling_ids])
        parent, grandparent = views.get(arch.parent_id), views.get(grand_id)
        siblings = [views[c] for c in sibling_ids if c in views and views[c].fitness is not None]
        candidate = views.get(arch.id)
        result = analyze(candidate, self.ref, parent, grandparent, siblings)
        llm = None
        try:
            llm = self.team.analyze(exp.id, candidate, self.ref, parent, grandparent, siblings, result.numbers)
        except LLMInvalid as err:
            # the statistical analysis stands; the failed calls are in the ledger
            self.events({"stage": "analyst", "note": f"LLM analysis failed: {err}"})
        with self.db.transaction() as tx:
            self.db.add_analysis(arch.id, "statistical", result.text, result.numbers, conn=tx)
            if llm is not None:
                text, numbers, experience = llm
                self.db.add_analysis(arch.id, "llm", text, numbers, conn=tx)
                self.db.add_analysis(arch.id, "experience", experience, None, conn=tx)
            exp = self.exps.advance(exp.id, "analyzed", conn=tx)
        return exp

    def finish(self, exp: Experiment) -> Experiment:
        exp = self.exps.advance(exp.id, "done", cost_usd=self.team.cost(exp.id))
        done = sum(self.exps.counts_by_state().get(s, 0) for s in ("done", "failed"))
        version = pool.maybe_update(self.db, self.policy, done, preset=self.preset.name,
                                    ranked=lambda: pool_ranking(self.study))
        if version is not None:
            self.events({"stage": "pool", "version": version.version, "size": len(version.members)})
        return exp

    def _checked(self, exp_id: int, report: RunResult) -> None:
        """Commit the child's passed probe report: with the move to `checked` from `proposed`, alone
        in `checked` (a debugger's fix was probed)."""
        data = report.model_dump(mode="json")
        exp = self.exps.get(exp_id)
        if exp.state == "proposed":
            self.exps.advance(exp_id, "checked", probe_report=data)
            self.events({"stage": "evaluate", "seq": exp.seq})  # the same child trains on
        else:
            self.exps.record_probes(exp_id, data)
        _fault("after:checked")

    def _stored_probes(self, exp: Experiment) -> RunResult | None:
        return RunResult.model_validate(exp.probe_report) if exp.probe_report else None

    def _fail_with_run(self, exp: Experiment, arch_id: int, result: RunResult, message: str | None = None) -> Experiment:
        with self.db.transaction() as tx:
            self.db.add_run(arch_id, EXPLORE, result, conn=tx)
            return self.exps.fail(exp.id, result.failure.kind.value, message or result.failure.message, conn=tx)

    # -- the study --------------------------------------------------------------------------------

    def experiments_counted(self) -> int:
        counts = self.exps.counts_by_state()
        return sum(counts.values())

    def run(self, budget: int | None = None, hours: float | None = None) -> dict[str, int]:
        """Resume open experiments, then start new ones until the budget, the time or a stopping
        rule (`self.stop_rules`, stopping.py) says stop; a ladder study then drains its promotions."""
        budget = self.cfg.budget if budget is None else budget
        deadline = time.monotonic() + hours * 3600 if hours else None
        self.stopper = Stopper(self, self.stop_rules, deadline)
        try:
            if self.experiments_counted() < budget:
                self.team.preflight()
            self.ensure_baseline()
            with self.claims.renewing():
                (self.scheduler or self._run)(budget, deadline)
        except BudgetExhausted as err:
            # the open experiment stays where it was: raising the budget resumes it
            self.events({"stage": "budget", "note": str(err)})
            self.stopped_by = str(err)
        return self.exps.counts_by_state()

    def _run(self, budget: int, deadline: float | None) -> None:
        for exp in self.claims.claim_open():
            self.events({"stage": "resume", "seq": exp.seq, "state": exp.state})
            self.run_experiment(exp)
        if self.ladder.enabled:
            self.ladder.step(self.experiments_counted())  # a batch a kill interrupted
        while self.experiments_counted() < budget:
            if deadline is not None and time.monotonic() > deadline:
                break
            if self.stopper.check():
                break
            exp = self.sample()
            self.events({"stage": "start", "seq": exp.seq})
            self.after(self.run_experiment(exp))
        self.wind_down()

    def after(self, exp: Experiment) -> None:
        """What follows every finished experiment, serial or parallel (parallel/driver.py): the
        periodic verification pass, a due ladder batch, the end event."""
        every = self.cfg.verify.every
        if every and self.experiments_counted() % every == 0:
            from archscout.verify import Verifier

            self.events({"stage": "verification pass"})
            Verifier(self.study, self.events).run()
        if self.ladder.enabled:
            self.ladder.step(self.experiments_counted())
        top = self.db.top_scores(EXPLORE, self.preset.name, 1)
        self.events({
            "stage": "end", "seq": exp.seq, "state": exp.state, "reason": exp.failure_reason,
            "best": top[0][1] if top else None,
            # the live view shows the posterior best beside the best single run (ui.RunView)
            "best_posterior": best_posterior(self.db, self.cfg.rungs(), self.cfg.fitness),
        })

    def wind_down(self) -> None:
        """After the last experiment: record why the study stopped; a ladder study drains its
        promotions so that it ends with verdicts (unless time or compute ran out)."""
        self.stopped_by = self.stopped_by or self.stopper.reason
        if self.ladder.enabled and not self.stopper.out_of_compute():
            self.ladder.drain(self.experiments_counted())

    def add_user_file(self, path: Path) -> Experiment:
        """A user's own candidate: stored as origin `user`, then evaluated like any other."""
        self.ensure_baseline()
        code = Path(path).read_text()
        exp = self.exps.start(proposer="user")
        self.claims.take(exp.id)  # a driver running on the same study leaves it to us
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
        with self.claims.renewing():
            return self.run_experiment(exp)

    # -- helpers ----------------------------------------------------------------------------------

    def _rng(self, seq: int, purpose: str) -> random.Random:
        # derived from (study seed, experiment number): a resumed experiment proposes the same thing
        digest = hashlib.sha256(f"{self.cfg.seed}:{seq}:{purpose}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))


    def _progress(self, event: dict) -> None:
        if "task" in event:
            _fault("during:train")
        self.events(event)

    def _evaluate(self, code: str, seed: int, preset: Preset | None = None, *,
                  probed: RunResult | None = None, on_checked: OnChecked | None = None) -> RunResult:
        """Every evaluation of the loop: probes and training of `code` in one sandboxed child
        (preset None = the study's preset). `probed`: a stored passed probe report (no probing);
        `on_checked`: called with the probe report when the probes pass."""
        # at another ladder rung the monitor compares against that rung's baseline (ladder.py)
        params, references = (self.ref_params(), self.references) if preset is None or preset.name == self.preset.name \
            else self.rung_refs.get(preset.name, (None, {}))
        options = dict(device=self.cfg.device, baseline_params=params, references=references,
                       extra_paths=self.cfg.candidate_path_list(self.study.folder))
        if self.remote is not None:
            # the same sandboxed child, as a Ray task on whichever node has room (parallel/); its
            # probe report and progress stream back while it runs (parallel/ray_pool.py)
            return self.remote(code=code, preset=preset or self.preset, seed=seed, probed=probed,
                               on_checked=on_checked, progress=self._progress, **options)
        return evaluate(code, preset or self.preset, seed, probed=probed, on_checked=on_checked,
                        progress=self._progress, **options)

    def ref_params(self) -> int | None:
        if self.ref is None or self.ref.params_mean is None:
            return None
        return int(self.ref.params_mean)

    def _store_score(self, arch_id: int, result: RunResult, conn=None, judge: float | None = None) -> None:
        if arch_id == self.baseline_id and self.cfg.fitness.judge == "llm":
            judge = BASELINE_JUDGE
        breakdown = compute_fitness(result, self.ref, self.cfg.fitness, judge_score=judge)
        self.db.add_score(
            arch_id, EXPLORE, self.preset.name, breakdown.fitness, breakdown.model_dump(mode="json"),
            self.ref.model_dump(mode="json"), conn=conn,
        )

    def _explore_run(self, arch_id: int):
        return next(r for r in self.db.runs_for(arch_id, EXPLORE, self.preset.name) if r.seed == self.cfg.explore_seed)

    def _views(self, arch_ids: list[int | None]) -> dict[int, ArchView]:
        """The one view of each architecture the stages get (proposer context, analysts, judges),
        read together (store/views.py); None and unknown ids have none."""
        return arch_views(self.db, arch_ids, self.preset.name, self.cfg.explore_seed)

    def _motivation_index(self) -> MotivationIndex:
        if self.motivations is None:
            # every stored motivation embedded in one batch (a resumed study of thousands starts fast)
            self.motivations = MotivationIndex.from_pairs(
                self.db.all_motivations(), backend=self.cfg.novelty.backend, threshold=self.cfg.novelty.threshold,
            )
        return self.motivations
