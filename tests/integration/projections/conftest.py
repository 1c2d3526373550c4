"""Fixtures of the projection tests: projection databases of each kind.

PostgreSQL databases are created per test and dropped after it: other suites share
the default test database and drop its schema, so these tests never use it directly.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from projections import db


@pytest.fixture
def new_pg_database(postgres_url):
    """A factory of new, empty PostgreSQL databases (URLs), dropped after the test."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new() -> str:
        name = f"proj_{uuid.uuid4().hex[:16]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(postgres_url).set(database=name).render_as_string(hide_password=False)

    yield new
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_db_url(request, tmp_path):
    """A factory of empty projection databases: SQLite files, then real PostgreSQL
    databases (every test using it runs once with each)."""
    if request.param == "sqlite":
        count = iter(range(1_000_000))
        return lambda: f"sqlite:///{tmp_path / f'views-{next(count)}.db'}"
    return request.getfixturevalue("new_pg_database")


@pytest.fixture
def db_url(new_db_url):
    return new_db_url()


@pytest.fixture
def open_engine():
    """Open projection databases, disposed of after the test."""
    engines = []

    def open_(url: str):
        engine = db.open_db(url)
        engines.append(engine)
        return engine

    yield open_
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(db_url, open_engine):
    return open_engine(db_url)
