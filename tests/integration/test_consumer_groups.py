"""Projectors and consumers scaled out in a Kafka consumer group, on the real broker
and a real PostgreSQL: three processes share a topic of four partitions while
events keep being appended; one of them is SIGKILLed mid-run (its partitions move
to the others after the group's session timeout); among the projectors another is
also paused past the session timeout and resumed (a zombie). Once the log is
drained, the views are exactly a single-process rebuild, and every notification
reached the receiver once (by its delivery id)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from receivers import HttpReceiver

from consumers.notify import NotifyConfig, NotifyConsumer
from consumers.store import Store, effect_id, engine_for
from ledger import codec
from ledger.cli import main
from ledger.config import open_log
from projections import db
from projections.runner import Runner, project
from projections.synthetic import populate

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 4


@pytest.fixture
def log_url(kafka_bootstrap):
    return f"kafka://{kafka_bootstrap}/ledger-test-group-{uuid.uuid4().hex[:12]}?partitions={PARTITIONS}"


class Member:
    """One ``ledger`` process of the group, its output in files (a pipe nobody
    reads would fill up and stall it)."""

    started: list[Member] = []
    """Every member started by the running test (killed when it ends, however it ends)."""

    def __init__(self, tmp_path: Path, name: str, args: list[str]):
        self.out = tmp_path / f"{name}.out"
        self.err = tmp_path / f"{name}.err"
        # faulthandler: a member that hangs is sent SIGABRT, and says where each thread was.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONFAULTHANDLER": "1"}
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from ledger.cli import run; run()", *args], stdout=out, stderr=err, env=env
            )
        Member.started.append(self)

    def stderr(self) -> str:
        return self.err.read_text()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(autouse=True)
def _no_member_outlives_its_test():
    # A failed assertion leaves --follow members running for good: kill them.
    yield
    while Member.started:
        member = Member.started.pop()
        if member.process.poll() is None:
            member.process.kill()
            member.process.wait(30)


class Writer:
    """Appends new models' lives (its own log client) until stopped."""

    def __init__(self, log_url: str):
        self.appended = 0
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(log_url,), daemon=True)
        self._thread.start()

    def _run(self, log_url: str) -> None:
        writer = open_log(log_url)
        try:
            round_ = 0
            while not self._stop.is_set():
                self.appended += populate(writer, models=4, rounds=2, seed=100 + round_, prefix=f"late{round_}")
                round_ += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failures.append(exc)
        finally:
            writer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self.failures, self.failures
        assert self.appended > 0


def _last_offsets(log) -> dict[int, int]:
    last: dict[int, int] = {}
    for record in log.read():
        last[record.position.partition] = record.position.offset
    return last


def _wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _working(members: list[Member], marker: str, timeout: float = 120) -> None:
    """Wait until every member has written ``marker`` (a line of work done)."""
    for member in members:
        try:
            _wait_for(
                lambda: marker in member.stderr() or member.process.poll() is not None,
                timeout,
                f"work by {member.err.name}",
            )
        except AssertionError as exc:
            member.process.send_signal(signal.SIGABRT)
            member.process.wait(30)
            raise AssertionError(f"{exc}; its stderr:\n{member.stderr()[-6000:]}") from None
        assert member.process.poll() is None, member.stderr()


def _kill_mid_run(
    members: list[Member], marker: str, writer: Writer, joined: str | None = None, stall: bool = False
) -> int:
    """Once the later members work too (or have ``joined``: the group has
    rebalanced), SIGKILL the first one while events keep coming, and let the writer
    go on for longer than the group's session timeout. With ``stall``, the second
    member is also paused (SIGSTOP) past the session timeout, then resumed: a zombie
    whose partitions were reassigned while it slept. Returns how much work
    (``marker`` lines) the killed one did."""
    _working(members[1:], joined or marker)
    time.sleep(2)
    done = members[0].stderr().count(marker)
    members[0].kill()
    if stall:
        members[1].process.send_signal(signal.SIGSTOP)
        time.sleep(9)
        members[1].process.send_signal(signal.SIGCONT)
        time.sleep(3)
    else:
        time.sleep(8)
    writer.stop()
    return done


def test_three_projectors_in_a_group_one_killed_one_stalled_end_as_a_single_rebuild(log_url, new_pg_database, tmp_path):
    log = open_log(log_url)
    views_url, reference_url = new_pg_database(), new_pg_database()
    try:
        populate(log, models=24, rounds=2, seed=1)
        assert len({log.partition_for(f"model-{i:04d}") for i in range(24)}) == PARTITIONS
        writer = Writer(log_url)

        def projector(name):
            return Member(
                tmp_path, name,
                ["--log", log_url, "--db", views_url, "project", "--follow", "--group", "g",
                 "--batch-size", "40", "--poll-interval", "0.2", "-v"],
            )

        members = [projector("p0")]
        _working(members, "batch:")
        members += [projector("p1"), projector("p2")]
        before_kill = _kill_mid_run(members, "batch:", writer, stall=True)

        last = _last_offsets(log)
        engine = db.open_db(views_url)
        _wait_for(lambda: Runner(engine).position() == last, 90, f"the group to apply the log up to {last}")
        for member in members[1:]:
            assert member.stop() == 0, member.stderr()
        engine.dispose()

        # Every member applied batches: the partitions were shared.
        assert before_kill > 0
        assert all(m.stderr().count("batch:") > 0 for m in members[1:]), [m.stderr()[-500:] for m in members]

        engine = db.open_db(views_url)
        reference = db.open_db(reference_url)
        project(log, reference, rebuild=True)
        assert Runner(reference).position() == last
        assert db.dump(engine) == db.dump(reference)
        engine.dispose()
        reference.dispose()
    finally:
        log.close()


def test_three_notifiers_in_a_group_one_killed_deliver_each_notification_once(log_url, new_pg_database, tmp_path):
    log = open_log(log_url)
    db_url = new_pg_database()
    config = tmp_path / "notify.toml"
    try:
        with HttpReceiver() as hook:
            config.write_text(
                "[retry]\nbase_delay = 0.2\nmax_delay = 1.0\nlease = 3.0\n"
                f'[[webhook]]\nname = "ops"\nurl = "{hook.url}"\nsecret = "group-test-secret"\n'
            )
            populate(log, models=24, rounds=2, seed=3)
            writer = Writer(log_url)

            def notifier(name):
                return Member(
                    tmp_path, name,
                    ["--log", log_url, "--db", db_url, "consume", "notify", "--follow", "--group", "n",
                     "--config", str(config), "--batch-size", "100", "--poll-interval", "0.2", "-v"],
                )

            members = [notifier("n0")]
            _working(members, "delivered")
            members += [notifier("n1"), notifier("n2")]
            assert _kill_mid_run(members, "delivered", writer, joined="now owns partitions") > 0

            # What the log calls for: one delivery per notified event and channel.
            consumer = NotifyConsumer(NotifyConfig.from_file(config), env={})
            wanted = set()
            for record in log.read():
                event = codec.decode(record.data)
                wanted |= {effect_id("notify", str(event.event_id), i.channel) for i in consumer.policy(event)}
            assert len(wanted) > 50

            def received() -> Counter:
                return Counter(r.headers.get("Idempotency-Key") for r in hook.accepted())

            _wait_for(lambda: set(received()) >= wanted, 90, f"{len(wanted)} deliveries")
            store = Store(engine_for(db_url), "notify")
            _wait_for(lambda: store.count_by_status() == {"delivered": len(wanted)}, 30, "every delivery recorded")
            for member in members[1:]:
                assert member.stop() == 0, member.stderr()

            counts = received()
            assert set(counts) == wanted
            # Once each; the only possible repeat is the one delivery the killed
            # process had sent but not yet recorded — sent again after its lease,
            # with the same delivery id for the receiver to drop.
            repeated = {key: n for key, n in counts.items() if n > 1}
            assert len(repeated) <= 1 and all(n == 2 for n in repeated.values()), repeated
            assert all(m.stderr().count("delivered") > 0 for m in members), [m.stderr()[-500:] for m in members]
            effects = store.list_effects()
            assert sorted(e["id"] for e in effects) == sorted(wanted)
    finally:
        log.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["project", "--follow", "--group", "g"], "not on Kafka"),
        (["consume", "notify", "--follow", "--group", "g"], "not on Kafka"),
        (["project", "--group", "g"], "add --follow"),
        (["project", "--follow", "--rebuild", "--group", "g"], "cannot be combined with --rebuild"),
        (["consume", "notify", "--once", "--group", "g"], "add --follow"),
        (["consume", "notify", "--follow", "--from-beginning", "--group", "g"], "drop --group"),
    ],
)
def test_group_is_refused_where_it_cannot_share_partitions(tmp_path, args, says):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    db_url = f"sqlite:///{tmp_path / 'views.db'}"
    with open_log(log_url) as log:
        populate(log, models=1, rounds=1)
    env = {"LEDGER_NOTIFY_FILE": str(tmp_path / "out.jsonl")}
    result = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, *args], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], result.output
    assert not (tmp_path / "out.jsonl").exists()

