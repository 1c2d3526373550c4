"""What users type, parsed by ledger.parsing: good values and bad ones.
(Instants and positions have their own tables in test_times.py and
test_projection_pure.py.)"""

from __future__ import annotations

import pytest

from ledger.errors import InputError
from ledger.parsing import parse_environment, parse_model, parse_model_version, parse_positions, parse_target

HUGE = "9" * 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ("churn", None)),
        ("churn@3", ("churn", 3)),
        ("team@churn@12", ("team@churn", 12)),
        ("churn@2147483647", ("churn", 2**31 - 1)),
        ("pump failure@1", ("pump failure", 1)),
    ],
)
def test_targets(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "churn\x00", "churn@", "@3", " @3", "churn@³", "churn@٣", "churn@３", "churn@+3", "churn@-3",
     "churn@ 3", "churn@3 ", "churn@3.0", "churn@0", "churn@2147483648", f"churn@{HUGE}", "churn@1_000"],
)
def test_bad_targets_are_input_errors(text):
    with pytest.raises(InputError):
        parse_target(text)


def test_a_version_can_be_required():
    assert parse_model_version("churn@3") == ("churn", 3)
    with pytest.raises(InputError, match="MODEL@VERSION"):
        parse_model_version("churn")


@pytest.mark.parametrize("text", ["", " ", "\t", "a\x00b"])
def test_bad_model_names_are_input_errors(text):
    with pytest.raises(InputError):
        parse_model(text)


def test_a_model_name_is_kept_as_typed():
    assert parse_model(" churn ") == " churn "


@pytest.mark.parametrize("text", ["production", "staging-eu.1", "7", "a" * 64])
def test_environments(text):
    assert parse_environment(text) == text


@pytest.mark.parametrize("text", ["", " production", "production ", "prod uction", "-prod", ".prod", "a" * 65, "prod\x00", "prodüction"])
def test_bad_environments_are_input_errors(text):
    with pytest.raises(InputError, match="environment"):
        parse_environment(text)


@pytest.mark.parametrize("text", ["0:³", "0:٣", "+0:1", "0:+1", "0:1_0", "0:1,,1:2", f"0:{HUGE}"])
def test_positions_take_ascii_digits_only(text):
    with pytest.raises(InputError):
        parse_positions(text)
