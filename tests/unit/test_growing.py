"""The rule state's grow-only collections: every version keeps what it held, whatever
is grown from it or from the versions before it, and they compare as the frozensets
and dicts they replace; growing one costs the same however long the stream is."""

from __future__ import annotations

import copy
import pickle
import tracemalloc
import uuid

from ledger import rules, samples
from ledger.append import check_drafts, decide
from ledger.events import utcnow
from ledger.growing import GrowingMap, GrowingSet, grown_map, grown_set


def test_each_version_keeps_its_items():
    empty = GrowingSet()
    a = empty.grown("a")
    ab = a.grown("b")
    ac = a.grown("c")  # grown from an older version: a branch
    abd = ab.grown("d")
    assert (set(empty), set(a), set(ab), set(ac), set(abd)) == (set(), {"a"}, {"a", "b"}, {"a", "c"}, {"a", "b", "d"})
    assert "b" not in ac and "c" not in ab and "d" not in ab
    assert ab.grown("a") is ab
    assert list(abd) == ["a", "b", "d"] and len(abd) == 3


def test_a_set_compares_as_a_frozenset():
    grown = grown_set(frozenset({"x"}), "y")
    assert grown == {"x", "y"} == grown and grown == frozenset({"x", "y"})
    assert grown != {"x"} and grown > {"x"} and {"x"} < grown
    assert sorted(grown) == ["x", "y"] and [1] not in grown
    assert copy.deepcopy(grown) == grown and pickle.loads(pickle.dumps(grown)) == grown


def test_a_map_keeps_each_version_and_compares_as_a_dict():
    one = grown_map({}, "e1", (1, "prod"))
    two = one.grown("e2", (2, "prod"))
    other = one.grown("e3", (1, "staging"))
    assert one == {"e1": (1, "prod")} and two == {"e1": (1, "prod"), "e2": (2, "prod")}
    assert other == {"e1": (1, "prod"), "e3": (1, "staging")} and "e2" not in other
    assert two.get("e3") is None and dict(two.items()) == two
    assert two.grown("e1", (9, "dev")) == {"e1": (9, "dev"), "e2": (2, "prod")} and two["e1"] == (1, "prod")
    assert pickle.loads(pickle.dumps(two)) == two and isinstance(two, GrowingMap)


def _long_state(items: int) -> rules.ModelState:
    state = rules.ModelState(
        "long",
        sequence=items,
        snapshots=frozenset(f"s{i}" for i in range(items)),
        alerts=frozenset(str(uuid.uuid4()) for _ in range(items)),
        feedback={str(uuid.uuid4()): (1, "prod") for _ in range(items)},
    )
    # The first growth adopts the loaded frozensets once (as after a rule-state
    # snapshot is read); the ones after it are what every append pays.
    first = samples.snapshot("long", "first").model_copy(
        update={"sequence": items + 1, "prev_hash": "0" * 64, "recorded_at": utcnow()}
    )
    return rules.apply(state, first, "1" * 64)


def _allocated(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_append_to_a_long_stream_does_not_copy_its_history():
    def one(state):
        draft = samples.snapshot("long", "one")
        dumps: list = []
        check_drafts([draft], dumps=dumps)
        return lambda: decide(state, lambda event_id: None, [draft], dumps=dumps)

    def batch(state):
        drafts = [samples.snapshot("long", f"b{i}") for i in range(20)]
        dumps: list = []
        check_drafts(drafts, dumps=dumps)
        return lambda: decide(state, lambda event_id: None, drafts, dumps=dumps)

    for work in (one, batch):
        work(_long_state(10))()  # the schema catalogue and the like, loaded once
        small, large = _allocated(work(_long_state(10))), _allocated(work(_long_state(20_000)))
        # A copy of 20,000 snapshot ids and alert ids is over 1 MB.
        assert large < small + 64_000, (work.__name__, small, large)
    long = _long_state(20_000)
    after = decide(long, lambda event_id: None, [samples.snapshot("long", "after")]).state
    assert "after" in after.snapshots and "after" not in long.snapshots
    assert len(after.snapshots) == len(long.snapshots) + 1 == long.sequence + 1
