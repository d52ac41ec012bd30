"""Schema migrations: a fresh database, an upgrade from version 1, a too-new schema, atomicity."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import UniqueConstraint, inspect, insert, select

from archscout.store import SchemaTooNewError, open_study_db
from archscout.store import migrations as m
from archscout.store import schema as s
from archscout.store.engine import make_engine


def recorded_versions(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(s.schema_migrations.c.version).order_by("version")).scalars())


def assert_matches_schema_py(engine) -> None:
    """The migrated database has exactly the tables, columns and indexes schema.py declares."""
    insp = inspect(engine)
    assert set(insp.get_table_names()) == set(s.metadata.tables)
    for name, table in s.metadata.tables.items():
        columns = {c["name"]: c["nullable"] for c in insp.get_columns(name)}
        assert columns == {c.name: c.nullable for c in table.columns}, name
        # PostgreSQL also lists the indexes behind unique constraints; those are compared below
        indexes = {i["name"] for i in insp.get_indexes(name) if "duplicates_constraint" not in i}
        assert indexes == {i.name for i in table.indexes}, name
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints(name)}
        declared = {
            tuple(c.name for c in con.columns)
            for con in table.constraints
            if isinstance(con, UniqueConstraint)
        } | {(c.name,) for c in table.columns if c.unique}
        assert uniques == declared, name


def test_fresh_database_reaches_latest_version_and_matches_schema(study_url):
    db = open_study_db(study_url)
    assert recorded_versions(db.engine) == [mig.version for mig in m.MIGRATIONS]
    assert_matches_schema_py(db.engine)
    db.close()


def test_reopening_applies_nothing_twice(study_url):
    open_study_db(study_url).close()
    db = open_study_db(study_url)
    assert recorded_versions(db.engine) == [mig.version for mig in m.MIGRATIONS]
    db.close()


def test_version_1_database_is_upgraded_and_keeps_its_rows(study_url):
    engine = make_engine(study_url)
    assert m.upgrade(engine, target=1) == 1
    now = s.utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(s.architectures).values(
                name="old", code="x = 1", code_hash="h1", norm_hash="n1", motivation="",
                origin="baseline", created_at=now,
            )
        )
        conn.execute(
            insert(s.experiments).values(
                seq=1, state="sampled", reference_ids=[], proposer="offline",
                started_at=now, updated_at=now,
            )
        )
    assert "cost_usd" not in {c["name"] for c in inspect(engine).get_columns("experiments")}
    engine.dispose()

    db = open_study_db(study_url)
    assert recorded_versions(db.engine) == [mig.version for mig in m.MIGRATIONS]
    assert_matches_schema_py(db.engine)
    assert db.architecture_by_code_hash("h1").name == "old"
    exp = db.experiments.by_seq(1)
    assert exp.state == "sampled" and exp.cost_usd is None
    # the upgraded database is fully usable, including the new column
    db.experiments.advance(exp.id, "failed", failure_reason="budget", cost_usd=0.25)
    assert db.experiments.get(exp.id).cost_usd == 0.25
    db.close()


def test_newer_schema_is_refused_with_one_line(study_url):
    open_study_db(study_url).close()
    engine = make_engine(study_url)
    with engine.begin() as conn:
        conn.execute(insert(s.schema_migrations).values(version=99, name="future", applied_at=s.utcnow()))
    engine.dispose()
    with pytest.raises(SchemaTooNewError) as err:
        open_study_db(study_url)
    latest = m.LATEST_VERSION
    assert str(err.value) == (
        f"study was created by a newer archscout (schema 99 > {latest}); upgrade archscout"
    )


def test_failing_migration_leaves_the_previous_version_intact(tmp_path, monkeypatch):
    def broken(conn):
        conn.exec_driver_sql("CREATE TABLE half_done (id INTEGER)")
        raise RuntimeError("boom")

    open_study_db(tmp_path).close()
    nxt = m.LATEST_VERSION + 1
    monkeypatch.setattr(m, "MIGRATIONS", [*m.MIGRATIONS, m.Migration(nxt, "broken", broken)])
    monkeypatch.setattr(m, "LATEST_VERSION", nxt)
    engine = make_engine(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        m.upgrade(engine)
    # DDL is transactional: the table the failed migration created is gone with its record
    assert "half_done" not in inspect(engine).get_table_names()
    assert recorded_versions(engine) == list(range(1, nxt))
    engine.dispose()


def test_processes_opening_a_new_study_together_migrate_it_once(tmp_path):
    errors: list[BaseException] = []

    def open_it():
        try:
            open_study_db(tmp_path).close()
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(tmp_path)
    assert recorded_versions(engine) == [mig.version for mig in m.MIGRATIONS]
    engine.dispose()
