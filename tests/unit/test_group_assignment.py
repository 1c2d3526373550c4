"""The hand-over rule a consumer-group follower keeps within one process: a
revocation returns only after the batch in hand is written, and a batch read under
an assignment that changed since is not written at all."""

from __future__ import annotations

import threading
import time

import pytest

from ledger.errors import InputError
from ledger.groups import Assignment, require_kafka


def test_a_batch_read_before_a_change_of_partitions_is_not_written():
    assignment = Assignment()
    assignment.assigned([0, 1])
    generation, owned = assignment.current()
    assert owned == {0, 1}
    with assignment.applying(generation) as mine:
        assert mine
    assignment.revoked([1])
    assert assignment.current()[1] == {0}
    with assignment.applying(generation) as mine:
        assert not mine
    with assignment.applying(assignment.current()[0]) as mine:
        assert mine


def test_a_revocation_waits_for_the_batch_in_hand():
    assignment = Assignment()
    assignment.assigned([0])
    generation, _ = assignment.current()
    revoked_at: list[float] = []
    inside = threading.Event()
    finished_at: list[float] = []

    def batch():
        with assignment.applying(generation) as mine:
            assert mine
            inside.set()
            time.sleep(0.3)  # the batch's transaction
            finished_at.append(time.monotonic())

    def revoke():
        assignment.revoked([0])
        revoked_at.append(time.monotonic())

    writer = threading.Thread(target=batch)
    writer.start()
    assert inside.wait(5)
    rebalance = threading.Thread(target=revoke)
    rebalance.start()
    writer.join(5)
    rebalance.join(5)
    assert finished_at and revoked_at
    assert revoked_at[0] >= finished_at[0]
    assert assignment.current()[1] == frozenset()


def test_only_a_kafka_log_can_be_shared():
    class Embedded:
        url = "sqlite:///ledger.db"

    with pytest.raises(InputError, match="not on Kafka"):
        require_kafka(Embedded())


def test_an_assignment_does_not_wait_for_the_batch_in_hand():
    # Kafka's client calls the listener on its I/O thread: waiting there stops the
    # heartbeats, so only a revocation (which must) waits.
    assignment = Assignment()
    assignment.assigned([0])
    generation, _ = assignment.current()
    with assignment.applying(generation) as mine:
        assert mine
        added = threading.Thread(target=assignment.assigned, args=([1],))
        added.start()
        added.join(2)
        assert not added.is_alive()
        assert assignment.current()[1] == {0, 1}
    with assignment.applying(generation) as mine:
        assert not mine  # read before the change: read again
