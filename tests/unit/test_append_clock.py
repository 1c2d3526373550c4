"""``recorded_at`` never steps back inside a model stream, even when the host
clock does (an NTP correction, a VM restored from a snapshot): every stream cut
at an instant is then a prefix of that stream. Streams are independent: a new
stream takes the clock as it is."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ledger import samples
from ledger.append import Appender
from ledger.backends.sqlite import SqliteLog

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def happened(draft):
    """``draft`` as it occurred before every clock reading of these tests (an event
    may not claim to have happened in the ledger's future)."""
    return draft.model_copy(update={"occurred_at": T0 - timedelta(days=3)})


class SteppingClock:
    """A clock that answers the times it is given, in turn."""

    def __init__(self, *times: datetime):
        self.times = list(times)

    def __call__(self) -> datetime:
        return self.times.pop(0)


def test_recorded_at_holds_when_the_clock_steps_back_inside_a_stream(tmp_path):
    clock = SteppingClock(T0, T0 - timedelta(hours=1), T0 + timedelta(minutes=5), T0 - timedelta(days=2))
    with SqliteLog(tmp_path / "log.db") as log:
        appender = Appender(log, clock=clock)
        recorded = [
            appender.append([happened(draft)])[0].event.recorded_at
            for draft in (samples.snapshot("churn"), samples.trained("churn"), samples.evaluated("churn"))
        ]
        assert recorded == [T0, T0, T0 + timedelta(minutes=5)]
        # Another stream is not held by churn's latest time.
        other = appender.append([happened(samples.snapshot("fraud"))])[0].event
        assert other.recorded_at == T0 - timedelta(days=2)


def test_a_fresh_appender_holds_recorded_at_from_the_stored_stream(tmp_path):
    # The guard reads the stream's last recorded_at from the log, not memory.
    with SqliteLog(tmp_path / "log.db") as log:
        Appender(log, clock=SteppingClock(T0)).append([happened(samples.snapshot("churn"))])
        late = Appender(log, clock=SteppingClock(T0 - timedelta(minutes=30)))
        accepted = late.append([happened(samples.trained("churn")), happened(samples.evaluated("churn"))])
        assert [a.event.recorded_at for a in accepted] == [T0, T0]
        assert [a.event.sequence for a in accepted] == [2, 3]


def test_occurred_at_is_the_clients_and_never_adjusted(tmp_path):
    happened = T0 - timedelta(days=3)
    with SqliteLog(tmp_path / "log.db") as log:
        appender = Appender(log, clock=SteppingClock(T0, T0 - timedelta(hours=2)))
        first = appender.append([samples.snapshot("churn").model_copy(update={"occurred_at": happened})])[0]
        second = appender.append([samples.trained("churn").model_copy(update={"occurred_at": happened})])[0]
        assert (first.event.occurred_at, first.event.recorded_at) == (happened, T0)
        assert (second.event.occurred_at, second.event.recorded_at) == (happened, T0)
