"""What the append path refuses on sight, now that one dump of each draft serves
the NUL check, the finite-number check and the encoding: a NUL or a non-finite
number anywhere in a batch (a nested value, a map key) is still refused with the
field named, and nothing of the batch is written."""

from __future__ import annotations

import pytest

from ledger import samples
from ledger.append import Appender
from ledger.backends.sqlite import SqliteLog
from ledger.errors import InputError, InvalidEvent
from ledger.events import FeatureStats


@pytest.fixture
def log(tmp_path):
    with SqliteLog(tmp_path / "log.db") as log:
        yield log


def _batch(bad):
    return [samples.snapshot("door", "s1"), samples.snapshot("door", "s2"), bad, samples.snapshot("door", "s4")]


def test_a_non_finite_number_deep_in_a_batch_is_named_and_nothing_is_written(log):
    stats = FeatureStats(name="x", count=3, quantiles=(1.0, float("inf"), 3.0))
    bad = samples.snapshot("door", "s3").model_copy(update={"feature_stats": (stats,)})
    with pytest.raises(InvalidEvent, match=r"feature_stats\[0\]\.quantiles\[1\] is not a finite number"):
        Appender(log).append(_batch(bad))
    assert list(log.read()) == []


def test_a_nul_in_a_map_key_is_named_and_nothing_is_written(log):
    Appender(log).append([samples.snapshot("door", "s1")])
    bad = samples.trained("door", snapshots=("s1",)).model_copy(update={"hyperparameters": {"depth\x00": "3"}})
    with pytest.raises(InputError, match=r"hyperparameters\.depth.* holds a NUL character"):
        Appender(log).append([samples.snapshot("door", "s2"), bad])
    assert len(list(log.read())) == 1


def test_a_batch_of_plain_drafts_is_written_whole(log):
    accepted = Appender(log).append(_batch(samples.snapshot("door", "s3")))
    assert [a.event.sequence for a in accepted] == [1, 2, 3, 4]
    assert len(list(log.read())) == 4
