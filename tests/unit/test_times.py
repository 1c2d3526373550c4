"""Instants typed on the command line (--as-of, --since, --until)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ledger.errors import InputError
from ledger.parsing import parse_instant


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-03-03", datetime(2026, 3, 3, tzinfo=timezone.utc)),
        ("2026-03-03T10:00", datetime(2026, 3, 3, 10, tzinfo=timezone.utc)),
        ("2026-03-03T10:00:00Z", datetime(2026, 3, 3, 10, tzinfo=timezone.utc)),
        ("2026-03-03T11:00:00+01:00", datetime(2026, 3, 3, 10, tzinfo=timezone.utc)),
    ],
)
def test_instants_are_utc(text, expected):
    assert parse_instant(text) == expected


def test_a_bare_date_is_midnight_utc_at_its_start_whatever_the_option():
    # One meaning for --as-of, --since and --until alike (it was the end of the day
    # for --until only).
    assert parse_instant("2026-03-03") == parse_instant("2026-03-03T00:00:00Z")
    assert "end_of_day" not in parse_instant.__code__.co_varnames


@pytest.mark.parametrize(
    "moment, printed",
    [
        (datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "0999-01-02T03:04:05.000000Z"),
        (datetime(1, 1, 1, tzinfo=timezone.utc), "0001-01-01T00:00:00.000000Z"),
        (datetime(2026, 3, 3, 10, tzinfo=timezone.utc), "2026-03-03T10:00:00.000000Z"),
    ],
)
def test_printed_times_have_four_digit_years(moment, printed):
    from projections.asof import iso

    assert iso(moment) == printed
    assert datetime.fromisoformat(iso(moment)) == moment


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-05:00"])
def test_an_instant_outside_the_calendar_in_utc_is_an_input_error(text):
    with pytest.raises(InputError, match="out of range"):
        parse_instant(text)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-03-03T25:00", "2026-03-03\x00"])
def test_malformed_instants_are_input_errors(text):
    with pytest.raises(InputError, match="malformed time"):
        parse_instant(text)
