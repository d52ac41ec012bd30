"""A study folder: its typed configuration (`study.toml`), its database and its evaluation preset.

The folder holds everything a study produces: `study.toml` (the config, written at creation and
editable), `study.db` (SQLite, WAL) and, later, reports. The config snapshot is also stored in the
database so a run can be traced to the settings that produced it. This module opens and validates;
the loop itself is in loop.py.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archscout.analyze.fitness import FitnessConfig
from archscout.analyze.stats import VerificationRule
from archscout.config import ConfigError, Preset, get_preset
from archscout.agents.base import LLMConfig
from archscout.store.db import StudyDB, open_study_db
from archscout.store.pool import PoolPolicy

CONFIG_NAME = "study.toml"

class NoveltyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "minilm", "bm25"] = "auto"
    threshold: float | None = None  # near-duplicate similarity; None = the backend's default
    max_attempts: int = 4  # proposals per experiment before it fails as a duplicate


class SandboxConfig(BaseModel):
    """How candidates may be isolated (archscout/evaluate/sandbox.py)."""

    model_config = ConfigDict(extra="forbid")
    # run LLM-written code even when bubblewrap cannot give namespaces (the fallback: no network or
    # filesystem isolation); offline proposals and `add` always run in whatever is available
    allow_fallback: bool = False


class VerifyConfig(BaseModel):
    """The verification stage (verify.py); its rule is written into the study's config."""

    model_config = ConfigDict(extra="forbid")
    top: int = Field(2, ge=1)  # architectures re-evaluated per verification pass
    seeds: int = Field(3, ge=2)  # fresh seeds per architecture
    preset: str | None = None  # None = the study's preset
    every: int | None = None  # also verify inside `archscout run` every this many experiments
    rule: VerificationRule = Field(default_factory=VerificationRule)


class LadderConfig(BaseModel):
    """The scale ladder (ladder.py): rungs are presets, cheapest first; no rungs = the study's preset
    alone with no promotion (a study from before the ladder)."""

    model_config = ConfigDict(extra="forbid")
    rungs: list[str] = Field(default_factory=list)
    top_fraction: float = Field(0.25, gt=0, le=1)  # of a rung's candidates by posterior, promoted per batch
    seeds: int | list[int] = 2  # seeds a candidate completes at a rung (one list entry per rung) before moving on
    promote_every: int = Field(4, ge=1)  # experiments between promotion batches
    verify: bool = True  # the top rung's survivors go through verify.py's FDR-controlled test
    # who gets a rung's extra seeds: "top" = the top fraction by posterior mean, all seeds at once;
    # "thompson" = one seed at a time to candidates a posterior draw puts above the promotion cutoff
    # (ladder.py); promotion itself is by posterior mean either way
    promote: Literal["top", "thompson"] = "top"

    @field_validator("seeds")
    @classmethod
    def _seeds_positive(cls, value: int | list[int]) -> int | list[int]:
        if any(v < 1 for v in ([value] if isinstance(value, int) else value)):
            raise ValueError("every rung needs at least 1 seed")
        return value

    def seeds_at(self, rung: int) -> int:
        return self.seeds if isinstance(self.seeds, int) else self.seeds[rung]


class RayConfig(BaseModel):
    """Where `archscout run` evaluates in parallel (parallel/): `--ray-address` overrides address."""

    model_config = ConfigDict(extra="forbid")
    address: str | None = None  # HOST:PORT of a running cluster's head; None = Ray embedded here
    runtime_env: dict[str, Any] | None = None  # Ray's runtime_env for the workers (env_vars, pip...)
    max_retries: int = Field(2, ge=0)  # re-runs of an evaluation whose worker or node died


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "study"
    preset: str = "tiny"
    presets_file: str | None = None  # extra presets TOML
    baseline: str = "deltanet"  # a built-in baseline name or a path to a candidate file
    baseline_seeds: int = Field(3, ge=1)  # the noise floor: baseline runs over these seeds
    explore_seed: int = 0  # training seed of exploration runs (common random numbers with baseline seed 0)
    seed: int = 0  # seeds sampling and proposing
    budget: int = Field(5, ge=0)  # experiments to run in total (5 at tiny + verification is the ~30-minute demo)
    proposer: Literal["offline", "llm"] = "offline"  # llm: the LLM agents (agents/team.py), configured by `llm`
    llm: LLMConfig = Field(default_factory=LLMConfig)  # used only when proposer = "llm"
    cognition_dirs: list[str] = Field(default_factory=list)  # the user's own cognition entry folders
    device: str = "auto"
    # folders put first on the candidate's sys.path in the worker (which drops PYTHONPATH), relative to
    # the study folder; the sandbox must bind them read-only
    candidate_paths: list[str] = Field(default_factory=list)
    pool: PoolPolicy | None = None  # None = paper defaults with cold start scaled to the preset
    fitness: FitnessConfig = Field(default_factory=FitnessConfig)
    novelty: NoveltyConfig = Field(default_factory=NoveltyConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    ladder: LadderConfig = Field(default_factory=LadderConfig)
    # a SQLAlchemy URL (postgresql+psycopg://user@host/db) that keeps the study's database outside the
    # folder, shared by drivers on several machines; None = study.db inside the study folder
    db_url: str | None = None
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("db_url")
    @classmethod
    def _db_url_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql", "sqlite")):
            raise ValueError("expected a database URL such as postgresql+psycopg://user@host/dbname")
        return value

    @model_validator(mode="after")
    def _preset_follows_ladder(self) -> StudyConfig:
        # a ladder names its cheapest rung; the study's (exploration) preset is that rung unless set
        if self.ladder.rungs and "preset" not in self.model_fields_set:
            self.preset = self.ladder.rungs[0]
        return self

    @model_validator(mode="after")
    def _judge_follows_proposer(self) -> StudyConfig:
        # with LLM agents the paper's judge is an LLM; a user who chose a judge explicitly keeps it
        if self.proposer == "llm" and "judge" not in self.fitness.model_fields_set:
            self.fitness = self.fitness.model_copy(update={"judge": "llm"})
            self.fitness.model_fields_set.add("judge")
        return self

    def rungs(self) -> list[str]:
        """The ladder's presets, cheapest first; a study without a ladder is one rung, its preset."""
        return list(self.ladder.rungs) or [self.preset]

    def candidate_path_list(self, folder: Path) -> list[str]:
        return [str((Path(folder) / p).expanduser().resolve()) for p in self.candidate_paths]

    def pool_policy(self, preset: Preset) -> PoolPolicy:
        """The study's own [pool] settings, else the preset's scale (presets.toml)."""
        if self.pool is not None:
            return self.pool
        return PoolPolicy(cold_start=preset.pool.cold_start, update_every=preset.pool.update_every)


def _field_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    return f"{where}: field '{loc}': {first['msg']}"


def parse_value(text: str) -> Any:
    """A `--set key=value` value: TOML syntax when it parses (numbers, booleans), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: '{key}' is not a table")
        node[leaf] = value
    return out


def load_config(folder: Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    path = folder / CONFIG_NAME
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
    try:
        config = StudyConfig.model_validate(apply_overrides(data, overrides or {}))
    except ValidationError as err:
        raise ConfigError(_field_error(err, str(path))) from None
    check_ladder(config, str(path))
    return config


def check_ladder(config: StudyConfig, where: str) -> None:
    """Rungs that are known presets in increasing order of training cost, starting at the study's
    preset, with one seed count per rung; a ConfigError naming the field otherwise."""
    ladder = config.ladder
    if not ladder.rungs:
        return
    extra = Path(config.presets_file) if config.presets_file else None
    costs = []
    for name in ladder.rungs:
        try:
            costs.append(get_preset(name, extra).train_cost)
        except ConfigError:
            raise ConfigError(f"{where}: field 'ladder.rungs': unknown preset '{name}'") from None
    for (a, ca), (b, cb) in zip(zip(ladder.rungs, costs), zip(ladder.rungs[1:], costs[1:])):
        if cb <= ca:
            raise ConfigError(f"{where}: field 'ladder.rungs': '{b}' (train cost {cb:.3g}) must cost more than "
                              f"'{a}' ({ca:.3g}); list rungs cheapest first")
    if ladder.rungs[0] != config.preset:
        raise ConfigError(f"{where}: field 'ladder.rungs': the first rung must be the study's preset "
                          f"'{config.preset}' (got '{ladder.rungs[0]}'); set preset = \"{ladder.rungs[0]}\"")
    if isinstance(ladder.seeds, list) and len(ladder.seeds) != len(ladder.rungs):
        raise ConfigError(f"{where}: field 'ladder.seeds': {len(ladder.seeds)} entries for {len(ladder.rungs)} rungs")


def write_config(folder: Path, config: StudyConfig) -> None:
    import tomli_w

    data = config.model_dump(exclude_none=True)
    (folder / CONFIG_NAME).write_text(tomli_w.dumps(data))


class StudyHandle:
    """An opened study: folder, config, preset and database."""

    def __init__(self, folder: Path, config: StudyConfig, preset: Preset, db: StudyDB):
        self.folder, self.config, self.preset, self.db = folder, config, preset, db

    def close(self) -> None:
        self.db.close()


def _check_db_move(folder: Path, overrides: dict[str, Any]) -> None:
    """`--db` may place a new study or repeat where an existing one lives, never move one: the
    experiments would stay behind in the old database."""
    if "db_url" not in overrides:
        return
    wanted = overrides["db_url"]
    has_config = (folder / CONFIG_NAME).exists()
    recorded = load_config(folder).db_url if has_config else None
    if (has_config or (folder / "study.db").exists()) and recorded != wanted:
        where = "in another database" if recorded else "in its study.db"
        raise ConfigError(f"the study in {folder} keeps its experiments {where}; --db cannot move it "
                          "(copy the rows with your database's tools, or start a new study folder)")


def open_study(folder: Path, overrides: dict[str, Any] | None = None, create: bool = True) -> StudyHandle:
    """Open (or create) the study in `folder`; config errors raise ConfigError naming the field."""
    folder = Path(folder)
    exists = (folder / CONFIG_NAME).exists() or (folder / "study.db").exists()
    if not exists and not create:
        raise ConfigError(f"no study in {folder} (run `archscout run --study {folder}` to start one)")
    if not folder.exists():
        # private to its owner: it holds every candidate, the LLM prompts and replies, and a
        # sandboxed child running as another uid must not read it
        folder.mkdir(parents=True, mode=0o700)
    config = load_config(folder, overrides)
    _check_db_move(folder, overrides or {})
    preset = get_preset(config.preset, Path(config.presets_file) if config.presets_file else None)
    db = open_study_db(config.db_url or folder)
    study = db.study()
    if study is not None and not (folder / CONFIG_NAME).exists():
        # a new folder joining a study kept in a shared database: the study's own settings, plus
        # whatever this command overrides
        try:
            config = StudyConfig.model_validate(apply_overrides(study.config, overrides or {}))
        except ValidationError as err:
            db.close()
            raise ConfigError(_field_error(err, "the shared study's config")) from None
        preset = get_preset(config.preset, Path(config.presets_file) if config.presets_file else None)
    if study is None:
        db.create_study(config.name, config.model_dump(mode="json"))
    elif overrides:
        db.set_config(config.model_dump(mode="json"))
    if not (folder / CONFIG_NAME).exists() or overrides:
        write_config(folder, config)
    return StudyHandle(folder, config, preset, db)
