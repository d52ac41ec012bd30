"""The LLM ledger: every call an agent makes, stored, summed and traced.

One row per call (`llm_calls`), whatever its outcome: agent, model, the prompt as sent, the raw
reply, tokens, latency, cost and outcome. Budgets (llm/client.py) read the study's totals from here,
`archscout status` shows spend per agent, and `archscout show ID --trace` and the dashboard show the
calls that produced one architecture. Pricing and the calls themselves are elsewhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from archscout.store import schema as s

OUTCOMES = ("ok", "repaired", "invalid", "error")


class LLMCall(BaseModel):
    id: int
    experiment_id: int | None
    architecture_id: int | None
    agent: str
    provider: str
    model: str
    prompt: dict[str, Any]
    response: str | None
    tokens_in: int
    tokens_out: int
    latency_s: float
    cost_usd: float | None
    outcome: str
    error: str | None
    created_at: datetime


class Ledger:
    """Queries on `llm_calls` for one study database (a StudyDB)."""

    def __init__(self, db):
        self.db = db

    def add(
        self,
        *,
        agent: str,
        provider: str,
        model: str,
        prompt: dict[str, Any],
        response: str | None,
        tokens_in: int,
        tokens_out: int,
        latency_s: float,
        cost_usd: float | None,
        outcome: str,
        error: str | None = None,
        experiment_id: int | None = None,
        architecture_id: int | None = None,
        conn: Connection | None = None,
    ) -> int:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown LLM call outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        values = dict(
            experiment_id=experiment_id, architecture_id=architecture_id, agent=agent, provider=provider,
            model=model, prompt=prompt, response=response, tokens_in=tokens_in, tokens_out=tokens_out,
            latency_s=latency_s, cost_usd=cost_usd, outcome=outcome, error=error, created_at=s.utcnow(),
        )
        with self.db.writing(conn) as c:
            return c.execute(insert(s.llm_calls).values(**values)).inserted_primary_key[0]

    def attach_architecture(self, experiment_id: int, architecture_id: int, *, conn: Connection | None = None) -> None:
        """Calls made before the architecture existed (planner, reviewer) belong to it once it does."""
        t = s.llm_calls
        stmt = (
            update(t)
            .where(t.c.experiment_id == experiment_id, t.c.architecture_id.is_(None))
            .values(architecture_id=architecture_id)
        )
        with self.db.writing(conn) as c:
            c.execute(stmt)

    def calls(
        self, *, experiment_id: int | None = None, architecture_id: int | None = None, conn: Connection | None = None
    ) -> list[LLMCall]:
        """Calls for one experiment or architecture (or all), oldest first."""
        t = s.llm_calls
        stmt = select(t).order_by(t.c.id)
        if experiment_id is not None:
            stmt = stmt.where(t.c.experiment_id == experiment_id)
        if architecture_id is not None:
            stmt = stmt.where(t.c.architecture_id == architecture_id)
        return [LLMCall.model_validate(r._mapping) for r in self.db.fetch_all(stmt, conn)]

    def trace(self, architecture_id: int, experiment_id: int | None, *, conn: Connection | None = None) -> list[LLMCall]:
        """An architecture's "cognitive trace": every call of the experiment that produced it (the
        planner's and reviewer's before the file existed, a debugger's on an earlier version) plus
        any call filed under the architecture itself, oldest first."""
        t = s.llm_calls
        cond = t.c.architecture_id == architecture_id
        if experiment_id is not None:
            cond = or_(cond, t.c.experiment_id == experiment_id)
        stmt = select(t).where(cond).order_by(t.c.id)
        return [LLMCall.model_validate(r._mapping) for r in self.db.fetch_all(stmt, conn)]

    def totals(self, *, conn: Connection | None = None) -> dict[str, float]:
        """The study's whole spend: calls, tokens in and out, dollars (priced calls only)."""
        t = s.llm_calls
        stmt = select(
            func.count(), func.coalesce(func.sum(t.c.tokens_in), 0), func.coalesce(func.sum(t.c.tokens_out), 0),
            func.coalesce(func.sum(t.c.cost_usd), 0.0),
        )
        row = self.db.fetch_one(stmt, conn)
        return {"calls": row[0], "tokens_in": int(row[1]), "tokens_out": int(row[2]), "cost_usd": float(row[3])}

    def spend_by_agent(self, *, conn: Connection | None = None) -> dict[str, dict[str, float]]:
        t = s.llm_calls
        stmt = (
            select(
                t.c.agent, func.count(), func.sum(t.c.tokens_in), func.sum(t.c.tokens_out),
                func.coalesce(func.sum(t.c.cost_usd), 0.0),
                func.sum(case((t.c.outcome.in_(("invalid", "error")), 1), else_=0)),
            )
            .group_by(t.c.agent)
            .order_by(t.c.agent)
        )
        return {
            r[0]: {"calls": r[1], "tokens_in": int(r[2] or 0), "tokens_out": int(r[3] or 0),
                   "cost_usd": float(r[4]), "failed": int(r[5] or 0)}
            for r in self.db.fetch_all(stmt, conn)
        }

    def experiment_cost(self, experiment_id: int, *, conn: Connection | None = None) -> float:
        t = s.llm_calls
        stmt = select(func.coalesce(func.sum(t.c.cost_usd), 0.0)).where(t.c.experiment_id == experiment_id)
        return float(self.db.fetch_one(stmt, conn)[0])
