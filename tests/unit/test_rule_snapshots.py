"""A rule-state snapshot must hold every field of the state: a field it drops is
a rule a fresh writer forgets (it once dropped alerts and feedback, then who
reopened a version and which approval went stale)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from ledger import rule_snapshots
from ledger.rules import ModelState, VersionState

# A value unlike each field's default, per annotation.
SAMPLES = {
    "int": 7,
    "str": "alice",
    "bool": True,
    "str | None": "carol",
    "tuple[str, ...]": ("snap-1", "snap-2"),
    "frozenset[str]": frozenset({"e-1", "e-2"}),
    "dict[str, int]": {"production": 2},
    "datetime | None": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    "dict[str, tuple[int, str]]": {"f-1": (2, "production")},
    "AbstractSet[str]": frozenset({"e-1", "e-2"}),
    "Mapping[str, tuple[int, str]]": {"f-1": (2, "production")},
}


def _unlike_defaults(cls, **given):
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = given[f.name]
            continue
        assert f.type in SAMPLES, f"no sample for {cls.__name__}.{f.name}: {f.type}"
        values[f.name] = SAMPLES[f.type]
    state = cls(**values)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        assert getattr(state, f.name) != default, f.name
    return state


def test_every_field_of_the_rule_state_survives_a_snapshot():
    version = _unlike_defaults(VersionState, version=2)
    state = _unlike_defaults(ModelState, model="churn", last_hash="ab" * 32, versions={2: version})
    restored = rule_snapshots.loads(rule_snapshots.dumps(state))
    assert restored is not None
    for f in dataclasses.fields(VersionState):
        assert getattr(restored.versions[2], f.name) == getattr(version, f.name), f.name
    for f in dataclasses.fields(ModelState):
        assert getattr(restored, f.name) == getattr(state, f.name), f.name
