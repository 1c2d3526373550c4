"""Session fixtures for the real services.

Kafka: ``LEDGER_TEST_KAFKA`` (``host:port``) when set; else a testcontainers broker
when a Docker engine answers; else the project's own broker, started with
``scripts/kafka.sh`` (jars fetched from Maven Central and cached).

PostgreSQL: ``LEDGER_TEST_POSTGRES`` (a SQLAlchemy URL) when set; else a
testcontainers server when Docker answers; else ``scripts/postgres.sh``.

With ``LEDGER_REQUIRE_SERVICES=1`` (CI sets it) a service that cannot be had is a
test *error*, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = os.environ.get("LEDGER_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true"


def _unavailable(what: str, why: str):
    if REQUIRED:
        pytest.fail(f"{what} is required (LEDGER_REQUIRE_SERVICES=1/CI) but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _script(name: str, *args: str) -> str:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """``host:port`` of a real Kafka 4.x broker."""
    if os.environ.get("LEDGER_TEST_KAFKA"):
        yield os.environ["LEDGER_TEST_KAFKA"]
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    try:
        _script("kafka.sh", "start")
        yield _script("kafka.sh", "bootstrap")
    except Exception as exc:  # noqa: BLE001 - reported through the skip/fail below
        _unavailable("Kafka", str(exc))


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a real, empty-able PostgreSQL database."""
    if os.environ.get("LEDGER_TEST_POSTGRES"):
        yield os.environ["LEDGER_TEST_POSTGRES"]
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    try:
        _script("postgres.sh", "start")
        yield _script("postgres.sh", "url")
    except Exception as exc:  # noqa: BLE001
        _unavailable("PostgreSQL", str(exc))


@pytest.fixture
def kafka_topic(kafka_bootstrap):
    """A fresh topic name per test, so tests never see each other's events."""
    return f"ledger-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka_log_url(kafka_bootstrap, kafka_topic):
    return f"kafka://{kafka_bootstrap}/{kafka_topic}?partitions=3"


@pytest.fixture
def sqlite_log_url(tmp_path):
    return f"sqlite:///{tmp_path / 'log.db'}"


@pytest.fixture
def new_pg_database(postgres_url):
    """A factory of new, empty PostgreSQL databases (URLs) of this test's own, dropped
    after it (so tests, and engineers running them side by side, never share tables)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new() -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(postgres_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_postgres(new_pg_database):
    """URL of a new, empty PostgreSQL database of its own, dropped after the test."""
    return new_pg_database()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped Kafka or PostgreSQL test is a failure: a green run must
    mean the real services were exercised."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRED and report.skipped and (item.get_closest_marker("kafka") or item.get_closest_marker("postgres")):
        report.outcome = "failed"
        report.longrepr = f"skipped a service test in CI: {report.longrepr}"
