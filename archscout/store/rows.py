"""Typed rows the study database hands back.

Callers never see SQLAlchemy `Row` objects: each query returns one of these pydantic models, so the
loop, the CLI and the dashboard (which renders them as JSON too) share one shape. Data only; the
queries live in db.py, experiments.py and pool.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from archscout.records import RunResult


class Study(BaseModel):
    id: int
    name: str
    created_at: datetime
    config: dict[str, Any]


class Architecture(BaseModel):
    id: int
    name: str
    parent_id: int | None
    code: str
    code_hash: str
    norm_hash: str | None
    motivation: str
    origin: str  # baseline | offline | llm | import | user
    genome: dict[str, Any] | None
    experiment_id: int | None
    created_at: datetime


class Run(BaseModel):
    id: int
    architecture_id: int
    stage: str  # explore | verify
    preset: str
    seed: int
    status: str  # ok | failed
    failure_kind: str | None
    val_loss: float | None
    benchmark: float | None
    params: int | None
    tokens_per_s: float | None
    wall_s: float | None
    result: RunResult
    created_at: datetime


class Score(BaseModel):
    id: int
    architecture_id: int
    stage: str
    preset: str
    fitness: float
    components: dict[str, Any]
    baseline_ref: dict[str, Any] | None
    created_at: datetime


class Analysis(BaseModel):
    id: int
    architecture_id: int
    kind: str  # statistical | llm
    text: str
    numbers: dict[str, Any] | None
    created_at: datetime


class PoolMember(BaseModel):
    architecture_id: int
    fitness: float | None  # None for a seed architecture not yet scored at the study preset
    sd: float | None = None  # posterior sd when the pool was ranked by posterior (analyze/posterior.py)


class PoolVersion(BaseModel):
    version: int
    created_at: datetime
    experiments_seen: int
    members: list[PoolMember] = Field(default_factory=list)  # best first

    @property
    def ids(self) -> list[int]:
        return [m.architecture_id for m in self.members]


class Experiment(BaseModel):
    id: int
    seq: int
    state: str
    parent_id: int | None
    reference_ids: list[int]
    architecture_id: int | None
    failure_reason: str | None
    failure_message: str | None
    proposer: str
    cost_usd: float | None
    probe_report: dict | None = None  # RunResult JSON of the passed probes (state `checked` on)
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    pool_version: int | None = None
    owner: str | None = None
    lease_until: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.state in ("done", "failed")


class ExperimentEvent(BaseModel):
    id: int
    experiment_id: int
    state: str
    at: datetime
    note: str
