"""The LLM ledger: every call an agent makes, stored, summed and traced.

One row per call (`llm_calls`), whatever its outcome: agent, model, the prompt as sent, the raw
reply, tokens, latency, cost and outcome. `archscout status` shows spend per agent, and `archscout
show ID --trace` and the dashboard show the calls that produced one architecture.

Budgets (agents/client.py) are kept here without overshoot, however many experiments call at once
(several driver threads, several drivers on one PostgreSQL study): `reserve` writes the call's row
before the request, holding its worst case (every prompt byte a token, plus max_tokens out), only
if the study's spend plus every reservation still open plus this one stays within the budgets;
the check and the insert are one transaction that holds the study's budget lock (SQLite: the write
lock taken at BEGIN; PostgreSQL: an advisory lock), so two callers can never both take the last
share. `settle` then replaces the worst case with what the call used. A process killed during a
call leaves its row `reserved`: the worst case stays counted, since the request may have been billed.

Pricing and the calls themselves are elsewhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from archscout.store import schema as s
from archscout.store.engine import lock_counter

OUTCOMES = ("ok", "repaired", "invalid", "error")
RESERVED = "reserved"  # a call in flight: its worst case counts against the budgets until settled


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

    def reserve(
        self,
        *,
        agent: str,
        provider: str,
        model: str,
        prompt: dict[str, Any],
        tokens_in: int,
        tokens_out: int,
        cost_usd: float | None,
        budget_tokens: int | None = None,
        budget_usd: float | None = None,
        experiment_id: int | None = None,
        architecture_id: int | None = None,
    ) -> tuple[int | None, dict[str, float]]:
        """Reserve a call's worst case (`tokens_in` + `tokens_out`, `cost_usd`) if it fits in the
        budgets beside what is spent and reserved: (its row id, the totals before it), or (None,
        those totals) when it does not fit and nothing was written."""
        with self.db.writing() as c:
            lock_counter(c, "llm_budget")
            held = self.totals(conn=c, reserved=True)
            tokens = held["tokens_in"] + held["tokens_out"] + tokens_in + tokens_out
            if budget_tokens is not None and tokens > budget_tokens:
                return None, held
            if budget_usd is not None and cost_usd is not None and held["cost_usd"] + cost_usd > budget_usd:
                return None, held
            values = dict(
                experiment_id=experiment_id, architecture_id=architecture_id, agent=agent, provider=provider,
                model=model, prompt=prompt, response=None, tokens_in=tokens_in, tokens_out=tokens_out,
                latency_s=0.0, cost_usd=cost_usd, outcome=RESERVED, error=None, created_at=s.utcnow(),
            )
            return c.execute(insert(s.llm_calls).values(**values)).inserted_primary_key[0], held

    def settle(
        self,
        call_id: int,
        *,
        response: str | None,
        tokens_in: int,
        tokens_out: int,
        latency_s: float,
        cost_usd: float | None,
        outcome: str,
        error: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """The reserved call's real numbers and outcome replace its worst case (the same row)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown LLM call outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        t = s.llm_calls
        with self.db.writing(conn) as c:
            done = c.execute(
                update(t).where(t.c.id == call_id, t.c.outcome == RESERVED).values(
                    response=response, tokens_in=tokens_in, tokens_out=tokens_out, latency_s=latency_s,
                    cost_usd=cost_usd, outcome=outcome, error=error,
                )
            ).rowcount
        if done != 1:
            raise ValueError(f"LLM call #{call_id} is not a reservation (settled already, or never reserved)")

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

    def totals(self, *, reserved: bool = False, conn: Connection | None = None) -> dict[str, float]:
        """The study's whole spend: calls, tokens in and out, dollars (priced calls only); with
        `reserved`, the worst cases of the calls still in flight too (what budgets are held to)."""
        t = s.llm_calls
        stmt = select(
            func.count(), func.coalesce(func.sum(t.c.tokens_in), 0), func.coalesce(func.sum(t.c.tokens_out), 0),
            func.coalesce(func.sum(t.c.cost_usd), 0.0),
        )
        if not reserved:
            stmt = stmt.where(t.c.outcome != RESERVED)
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
            .where(t.c.outcome != RESERVED)
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
        stmt = select(func.coalesce(func.sum(t.c.cost_usd), 0.0)).where(t.c.experiment_id == experiment_id,
                                                                         t.c.outcome != RESERVED)
        return float(self.db.fetch_one(stmt, conn)[0])
