"""Fixtures of the projection tests: projection databases of each kind, each test
running once on SQLite and once on a real PostgreSQL (a new database per test)."""

from __future__ import annotations

import pytest

from projections import db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_kind(request):
    """Every test using a projection database runs on SQLite, then on PostgreSQL."""
    return request.param


@pytest.fixture
def new_db_url(request, db_kind, tmp_path):
    """A factory of empty projection databases of the test's kind."""
    if db_kind == "sqlite":
        count = iter(range(1_000_000))
        return lambda: f"sqlite:///{tmp_path / f'views-{next(count)}.db'}"
    return request.getfixturevalue("new_pg_database")


@pytest.fixture
def db_url(request, db_kind, tmp_path):
    if db_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'views.db'}"
    return request.getfixturevalue("fresh_postgres")


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
