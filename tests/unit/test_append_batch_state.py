"""A batch of drafts is decided on the stream's state, whose growing sets share
storage from one event to the next (``ledger.growing``): the state after the batch
must be the state after the same events one by one, and the state the batch started
from must not change (a writer keeps it as the stream's committed state)."""

from __future__ import annotations

import copy

from ledger import samples
from ledger.append import check_drafts, decide
from ledger.events import utcnow
from ledger.rules import ModelState


def _drafts(model: str) -> list:
    feedback = samples.feedback(model)
    return [
        *samples.lifecycle(model),
        samples.drift(model),
        feedback,
        samples.degraded(model, str(feedback.event_id)),
        samples.snapshot(model, "s2"),
        samples.trained(model, 2, snapshots=("s1", "s2"), parent_version=1),
        samples.drift(model, value=0.6),
    ]


def test_a_batch_ends_in_the_state_of_the_same_events_one_by_one():
    drafts = _drafts("batch")
    now = utcnow()
    one_by_one = ModelState("batch")
    for draft in drafts:
        check_drafts([draft])
        one_by_one = decide(one_by_one, lambda event_id: None, [draft], clock=lambda: now).state
    start = ModelState("batch")
    check_drafts(drafts)
    batched = decide(start, lambda event_id: None, drafts, clock=lambda: now).state
    assert batched == one_by_one
    assert not hasattr(batched.snapshots, "add") and not hasattr(batched.alerts, "add")  # immutable
    assert batched.snapshots == {"s1", "s2"} and len(batched.alerts) == 3 and len(batched.feedback) == 1


def test_a_batch_leaves_the_state_it_started_from_unchanged():
    drafts = _drafts("kept")
    first, rest = drafts[:7], drafts[7:]
    now = utcnow()
    check_drafts(first)
    start = decide(ModelState("kept"), lambda event_id: None, first, clock=lambda: now).state
    before = copy.deepcopy(start)
    check_drafts(rest)
    after = decide(start, lambda event_id: None, rest, clock=lambda: now).state
    assert start == before
    assert after.sequence == before.sequence + len(rest)
    assert after.snapshots > start.snapshots and after.alerts > start.alerts
