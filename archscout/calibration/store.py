"""Finished calibration evaluations in a SQLite file (`<dir>/calibration.db`), one row per
(member, preset, seed, run key).

Each evaluation is committed the moment it finishes, so a calibration killed at any point loses at
most the evaluation in flight, and a rerun skips every finished one. The run key (run.py `run_key`:
the member's code hash, the preset's definition and the evaluation version; the column keeps its old
name `code_hash`) is part of the primary key: editing a member's file, re-sizing a preset or changing
how runs are scored makes the old rows stale instead of silently reused. It stores
results; it does not evaluate or summarise them.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from archscout.records import RunResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    member TEXT NOT NULL,
    preset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    code_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    wall_s REAL,
    result TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (member, preset, seed, code_hash)
)
"""


class CalibrationStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "calibration.db"
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def done(self, member: str, preset: str, seed: int, code_hash: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM runs WHERE member=? AND preset=? AND seed=? AND code_hash=?",
            (member, preset, seed, code_hash),
        ).fetchone()
        return row is not None

    def add(self, member: str, result: RunResult, key: str | None = None) -> None:
        """Store one finished evaluation under `key` (default: the candidate's code hash)."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    member, result.preset, result.seed, key or result.candidate_hash, result.status,
                    result.wall_s.get("total"), result.model_dump_json(),
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                ),
            )

    def results(self, preset: str, hashes: dict[str, str]) -> dict[str, list[RunResult]]:
        """member -> its finished results at `preset` stored under the member's key in `hashes`, by seed."""
        out: dict[str, list[RunResult]] = {}
        for member, code in hashes.items():
            rows = self.conn.execute(
                "SELECT result FROM runs WHERE member=? AND preset=? AND code_hash=? ORDER BY seed",
                (member, preset, code),
            ).fetchall()
            out[member] = [RunResult.model_validate_json(r[0]) for r in rows]
        return out

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
