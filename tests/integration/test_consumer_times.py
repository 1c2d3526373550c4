"""The consumers' tables keep times as the projections do (fixed-width ISO-8601 UTC
text, :func:`ledger.sql.iso`), and a consumer database made by the previous version
(times as Unix-second floats) is converted in place when it is opened, without
losing a position, an effect or a dead letter, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    inspect,
    text,
)

from consumers import store as consumer_store
from consumers.runner import Consumer, Intent, Runner
from ledger import log_identity
from ledger.client import Ledger
from ledger.config import open_log
from ledger import samples
from projections import asof
from test_runner import _fresh_engines, db_url  # noqa: F401 - fixtures: SQLite and PostgreSQL, engines disposed

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIME_COLUMNS = {
    "cons_positions": ("updated_at",),
    "cons_logs": ("recorded_at",),
    "cons_effects": ("next_attempt_at", "claimed_at", "created_at", "updated_at", "finished_at"),
    "cons_dead_letters": ("recorded_at",),
}


@pytest.fixture
def log_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with Ledger.open(url) as ledger:
        for i in range(4):
            # one event per model (retiring a model with no events is refused since issue 9)
            ledger.emit(samples.snapshot(f"m{i}", actor="ops"))
    return url


class Recorder(Consumer):
    name = "recorder"

    def __init__(self, broken_model: str | None = None):
        self.done: list[str] = []
        self.broken_model = broken_model

    def policy(self, event):
        if event.model == self.broken_model:
            raise KeyError("a bug in the policy")
        return [Intent("a", {"model": event.model})]

    def perform(self, effect):
        self.done.append(effect.payload["model"])
        return "ok"


def run(consumer, log_url, db_url):
    with open_log(log_url) as event_log:
        return Runner(consumer, event_log, db_url).run_once(max_wait=5)


def raw(db_url: str, table: str) -> list[dict]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


def test_consumer_times_are_stored_like_the_projections_times(log_url, db_url):
    before = asof.iso(datetime.now(timezone.utc))
    run(Recorder(broken_model="m1"), log_url, db_url)
    after = asof.iso(datetime.now(timezone.utc))
    seen = 0
    for table, columns in TIME_COLUMNS.items():
        rows = raw(db_url, table)
        assert rows, table
        for row in rows:
            for column in columns:
                value = row[column]
                if value is None:
                    continue
                assert isinstance(value, str) and ISO.match(value), (table, column, value)
                assert before <= value <= after, (table, column, value)
                seen += 1
    assert seen >= 4 * 3 + 3  # delivered effects: next, created, updated, finished


def test_the_store_still_answers_in_unix_seconds_and_compares_times_in_the_database(log_url, db_url):
    run(Recorder(), log_url, db_url)
    store = consumer_store.Store(consumer_store.engine_for(db_url), "recorder")
    (first, *_) = store.list_effects("delivered")
    assert abs(first["finished_at"] - time.time()) < 600
    # A whole second survives the round trip exactly.
    with store.begin() as conn:
        conn.execute(
            consumer_store.effects.update().values(status="retrying", next_attempt_at=2_000_000_000.0, claimed_at=None)
        )
    assert store.next_due_at(lease=60) == 2_000_000_000.0
    assert store.due(now=1_999_999_999.5, lease=60, limit=10) == []
    assert len(store.due(now=2_000_000_000.0, lease=60, limit=10)) == 4


# The consumer tables as the previous version created them (consumers/store.py at
# 3b05b4e): every time a Float of Unix seconds.
_old = MetaData()
Table(
    "cons_positions",
    _old,
    Column("consumer", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Table(
    "cons_logs",
    _old,
    Column("consumer", String(64), primary_key=True),
    Column("identity", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
)
Table(
    "cons_effects",
    _old,
    Column("id", String(36), primary_key=True),
    Column("consumer", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed_at", Float),
    Column("last_error", Text),
    Column("outcome", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    UniqueConstraint("consumer", "event_id", "channel", name="uq_cons_effects_event_channel"),
)
Table(
    "cons_dead_letters",
    _old,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("event_id", String(64)),
    Column("effect_id", String(36)),
    Column("channel", String(128)),
    Column("reason", Text, nullable=False),
    Column("data", LargeBinary),
    Column("recorded_at", Float, nullable=False),
    UniqueConstraint("consumer", "subject", name="uq_cons_dead_letters"),
)

T0 = 1_767_000_000.25  # 2025-12-29, a quarter second past


def old_database(db_url: str, log_url: str) -> None:
    """What the previous version left after handling the first three records: two
    effects delivered, one still to retry, one record dead-lettered."""
    with open_log(log_url) as event_log:
        identity = str(log_identity.identify(event_log))
        records = list(event_log.read())[:3]
    engine = create_engine(db_url)
    with engine.begin() as conn:
        _old.create_all(conn)
        conn.execute(
            _old.tables["cons_positions"].insert(),
            [{"consumer": "recorder", "partition": 0, "offset": records[-1].position[1], "updated_at": T0}],
        )
        conn.execute(_old.tables["cons_logs"].insert(), [{"consumer": "recorder", "identity": identity, "recorded_at": T0}])
        effects = []
        for n, record in enumerate(records[:2]):
            event_id = f"event-{n}"
            effects.append(
                {
                    "id": consumer_store.effect_id("recorder", event_id, "a"),
                    "consumer": "recorder",
                    "event_id": event_id,
                    "channel": "a",
                    "event_type": "ModelRetired",
                    "model": f"m{n}",
                    "version": None,
                    "partition": 0,
                    "offset": record.position[1],
                    "payload": f'{{"model": "m{n}"}}',
                    "status": "delivered" if n == 0 else "retrying",
                    "attempts": 1,
                    "next_attempt_at": T0,
                    "claimed_at": None,
                    "last_error": None if n == 0 else "flaky",
                    "outcome": "ok" if n == 0 else None,
                    "created_at": T0,
                    "updated_at": T0 + 1,
                    "finished_at": T0 + 1 if n == 0 else None,
                }
            )
        conn.execute(_old.tables["cons_effects"].insert(), effects)
        conn.execute(
            _old.tables["cons_dead_letters"].insert(),
            [
                {
                    "consumer": "recorder",
                    "kind": "record",
                    "subject": f"record:0:{records[2].position[1]}",
                    "partition": 0,
                    "offset": records[2].position[1],
                    "reason": "undecodable: old",
                    "data": b"\xc3\x01",
                    "recorded_at": T0 + 2,
                }
            ],
        )
    engine.dispose()


def test_a_database_of_the_previous_version_is_converted_when_opened_and_nothing_is_lost(log_url, db_url):
    old_database(db_url, log_url)
    store = consumer_store.Store(consumer_store.engine_for(db_url), "recorder")

    columns = {c["name"]: c["type"] for c in inspect(store.engine).get_columns("cons_effects")}
    assert not isinstance(columns["created_at"], Float)
    (delivered,) = store.list_effects("delivered")
    assert (delivered["created_at"], delivered["finished_at"]) == (T0, T0 + 1)
    assert raw(db_url, "cons_effects")[0]["created_at"] == "2025-12-29T09:20:00.250000Z"
    (letter,) = store.list_dead_letters()
    assert (letter["reason"], letter["data"], letter["recorded_at"]) == ("undecodable: old", b"\xc3\x01", T0 + 2)
    assert store.positions() == {0: 3}

    # The consumer goes on where the old version stopped: the effect left to retry is
    # performed, the fourth record handled, nothing delivered twice.
    consumer = Recorder()
    report = run(consumer, log_url, db_url)
    assert report.records == 1 and sorted(consumer.done) == ["m1", "m3"]
    assert store.positions() == {0: 4}
    assert len(store.list_effects("delivered")) == 3
    # A new dead letter gets a new id after the converted one.
    store.dead(store.get_effect(delivered["id"]), "test", now=T0 + 3)
    assert [d["id"] for d in store.list_dead_letters()] == [letter["id"], letter["id"] + 1]


def test_opening_a_converted_database_again_changes_nothing(log_url, db_url):
    old_database(db_url, log_url)
    consumer_store.engine_for(db_url)
    first = raw(db_url, "cons_effects")
    consumer_store.dispose_engines()
    consumer_store.engine_for(db_url)
    assert raw(db_url, "cons_effects") == first
