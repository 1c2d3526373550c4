"""The append path when a backend loses a race and calls ``plan`` again (the Kafka
log does after being fenced): the answer describes what the last plan stored, never
a draft decided on the stale state. Pure: an in-memory log."""

from __future__ import annotations

from ledger import samples
from ledger.append import Appender
from ledger.log import EventLog, NewRecord, Position, StoredRecord, StreamHead, StreamView


class _MemoryLog(EventLog):
    url = "memory://"

    def __init__(self):
        self.records: list[StoredRecord] = []
        self.event_ids: list[str] = []
        self.plans = 0
        self.rival_drafts: list = []

    def view(self) -> StreamView:
        log = self

        class View(StreamView):
            def head(self):
                return StreamHead(log.records[-1].sequence, log.records[-1].hash) if log.records else None

            def records_after(self, sequence):
                return iter([r for r in log.records if r.sequence > sequence])

            def find(self, event_id):
                return log.records[log.event_ids.index(event_id)] if event_id in log.event_ids else None

        return View()

    def store(self, new: list[NewRecord]) -> list[StoredRecord]:
        start = len(self.records)
        for record in new:
            self.records.append(
                StoredRecord(
                    Position(0, len(self.records)), record.model, record.sequence, record.event_type,
                    record.fingerprint, record.data, None, record.hash,
                )
            )
            self.event_ids.append(record.event_id)
        return self.records[start:]

    def append(self, model, plan):
        self.plans += 1
        records = plan(self.view())
        if self.rival_drafts:
            # A rival commits first: what this plan decided is thrown away, as a
            # fenced Kafka writer's transaction is, and the plan runs on the new state.
            drafts, self.rival_drafts = self.rival_drafts, []
            Appender(self).append(drafts)
            self.plans += 1
            records = plan(self.view())
        return self.store(records)

    def read(self, after=None, *, model=None):
        return iter(self.records)

    def models(self):
        return sorted({r.model for r in self.records})


def test_the_answer_is_what_the_last_plan_stored():
    log = _MemoryLog()
    ledger = Appender(log)
    ledger.append([samples.snapshot("churn")])
    log.rival_drafts = [samples.snapshot("churn", "rival-1"), samples.snapshot("churn", "rival-2")]

    (answer,) = ledger.append([samples.snapshot("churn", "mine")])

    assert log.plans == 4  # first append, mine (stale), rival, mine again
    assert [r.sequence for r in log.records] == [1, 2, 3, 4]
    assert answer.event.sequence == 4
    assert answer.event.prev_hash == log.records[2].hash
    assert (answer.position, answer.hash) == (log.records[3].position, log.records[3].hash)
