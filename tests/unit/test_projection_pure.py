"""Pure parts of the projections: cuts, stored times, status, summaries, node names."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ledger import samples
from ledger.errors import InputError
from projections.asof import AsOf, iso, iso_ms, parse_positions
from projections.audit import summarize
from projections.queries import resolve_node
from projections.registry import status_of


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0:57", {0: 57}),
        ("0:57,1:12,2:0", {0: 57, 1: 12, 2: 0}),
        (" 1:3 , 0:4 ", {1: 3, 0: 4}),
    ],
)
def test_positions_parse(text, expected):
    assert parse_positions(text) == expected


@pytest.mark.parametrize("text", ["", "57", "0:", ":5", "a:b", "0:1:2", "-1:3", "0:-3", "0:1,0:2", "0;1"])
def test_malformed_positions_are_input_errors(text):
    with pytest.raises(InputError):
        parse_positions(text)


@pytest.mark.parametrize("text", ["0:9223372036854775808", "0:99999999999999999999999", "2147483648:0"])
def test_positions_beyond_what_a_log_can_hold_are_input_errors(text):
    # Kafka partitions are 32-bit and offsets 64-bit signed; PostgreSQL refuses larger
    # numbers with a database error, which would read as an unreachable database.
    with pytest.raises(InputError, match="out of range"):
        parse_positions(text)


def test_a_cut_names_a_time_or_positions_not_both():
    with pytest.raises(InputError):
        AsOf()
    with pytest.raises(InputError):
        AsOf(time="2026-03-03T00:00:00.000000Z", positions={0: 1})


def test_time_cut_is_inclusive_and_excludes_records_of_unknown_time():
    cut = AsOf.at("2026-03-03T10:00:00Z")
    assert cut.includes(0, 99, "2026-03-03T10:00:00.000000Z")
    assert not cut.includes(0, 1, "2026-03-03T10:00:00.000001Z")
    assert not cut.includes(0, 1, None)


def test_position_cut_is_inclusive_per_partition_and_excludes_unnamed_partitions():
    cut = AsOf.at_positions("0:10,2:5")
    assert cut.includes(0, 10, None) and not cut.includes(0, 11, None)
    assert cut.includes(2, 0, None) and not cut.includes(2, 6, None)
    assert not cut.includes(1, 0, None)
    assert cut.describe() == "as of position 0:10,2:5"


def test_a_bare_date_cut_is_the_start_of_that_day_in_utc():
    assert AsOf.at("2026-03-03").time == "2026-03-03T00:00:00.000000Z"
    assert AsOf.at("2026-03-03T12:00:00+02:00").time == "2026-03-03T10:00:00.000000Z"
    with pytest.raises(InputError):
        AsOf.at("the third of March")


def test_stored_times_are_fixed_width_and_sort_like_the_instants():
    base = datetime(2026, 3, 3, 9, 59, 59, 999999, tzinfo=timezone.utc)
    instants = [base + timedelta(microseconds=n) for n in (0, 1, 2, 10**6, 86400 * 10**6)]
    texts = [iso(i) for i in instants]
    assert len({len(t) for t in texts}) == 1
    assert sorted(texts) == texts
    assert iso(datetime(2026, 3, 3, 11, tzinfo=timezone(timedelta(hours=1)))) == "2026-03-03T10:00:00.000000Z"
    with pytest.raises(InputError):
        iso(datetime(2026, 3, 3))
    assert iso_ms(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_ms(None) is None


@pytest.mark.parametrize(
    "state, status",
    [
        ({"evaluations": 0}, "trained"),
        ({"evaluations": 2}, "evaluated"),
        ({"evaluations": 1, "approved_by": "bob", "deployed_in": "[]"}, "approved"),
        ({"evaluations": 1, "approved_by": "bob", "deployed_in": '["production"]'}, "deployed"),
        ({"evaluations": 1, "approved_by": "bob", "rejected_by": "eve", "deployed_in": '["production"]'}, "rejected"),
        ({"evaluations": 1, "rejected_by": "eve"}, "rejected"),
        ({"evaluations": 1, "approved_by": "bob", "deployed_in": "[]", "retired_at": "2026-03-03T00:00:00.000000Z"}, "retired"),
    ],
)
def test_status_follows_the_rules_precedence(state, status):
    assert status_of(state) == status


@pytest.mark.parametrize(
    "event, expected",
    [
        (samples.snapshot("churn", "s7"), "snapshot s7 of sensors: 1000 rows, 3 columns, content sha256:s7"),
        (samples.trained("churn", 2, parent_version=1), "trained v2 on s1 with code git:0123abc, retrained from v1"),
        (samples.trained("churn", 3, trigger="drift", trigger_alert_id="a-1"), "trained v3 on s1 with code git:0123abc (trigger: drift a-1)"),
        (samples.evaluated("churn", 1), "evaluated v1 on s1: passed (roc_auc=0.91)"),
        (samples.evaluated("churn", 1, passed=False), "evaluated v1 on s1: failed (roc_auc=0.55)"),
        (samples.approved("churn", 1), "approved v1: metrics above policy"),
        (samples.deployed("churn", 2), "deployed v2 to production"),
        (samples.deployed("churn", 2).model_copy(update={"replaced_version": 1}), "deployed v2 to production, replacing v1"),
        (samples.drift("churn", 1), "drift on v1 in production: psi of air_temperature 0.4 at or above threshold 0.2 (reference s1)"),
        (samples.retired("churn", 1), "retired v1: superseded"),
        (samples.retired("churn", None), "retired the model: superseded"),
    ],
)
def test_audit_summaries_say_what_changed(event, expected):
    assert summarize(event) == expected


@pytest.mark.parametrize(
    "text, node",
    [
        ("churn@3", "version:churn@3"),
        ("my.model-2@10", "version:my.model-2@10"),
        ("snapshot:churn/2026-03", "snapshot:churn/2026-03"),
        ("dataset:customers", "dataset:customers"),
    ],
)
def test_node_names(text, node):
    assert resolve_node(text) == node


@pytest.mark.parametrize("text", ["churn", "churn@", "@3", "churn@three", "version"])
def test_unclear_node_names_are_input_errors(text):
    with pytest.raises(InputError):
        resolve_node(text)
