"""Strict JSON in, portable JSON out. Pure."""

from __future__ import annotations

import json
import math

import pytest

from ledger import jsonio
from ledger.errors import InputError

BAD = [
    ('{"passed": false, "passed": true}', "appears twice"),
    ('{"a": {"x": 1, "x": 2}}', "appears twice"),
    ('{"metrics": {"auc": Infinity}}', "not a JSON number"),
    ('{"metrics": {"auc": -Infinity}}', "not a JSON number"),
    ('{"metrics": {"auc": NaN}}', "not a JSON number"),
    ('{"metrics": {"auc": 1e999}}', "too large to be finite"),
    ('{"metrics": {"auc": -1e999}}', "too large to be finite"),
    ('{"a": ' + "[" * 100000 + "]" * 100000 + "}", "nested more than"),
    ('{"a": ' + "[" * 33 + "]" * 33 + "}", "nested more than"),
    ("[1, 2]", "must be an object"),
    ('{"a": 1', "malformed JSON"),
    (b'{"a": "\xff"}', "not UTF-8"),
]


@pytest.mark.parametrize(("text", "why"), BAD)
def test_bad_json_is_one_clear_input_error(text, why):
    with pytest.raises(InputError) as caught:
        jsonio.load_object(text)
    assert why in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_json_reads_as_usual():
    text = '\ufeff{"a": [1, 2.5, {"b": "[{not nesting}]"}], "c": null, "d": "x\\"["}'
    assert jsonio.load_object(text.encode()) == {"a": [1, 2.5, {"b": "[{not nesting}]"}], "c": None, "d": 'x"['}
    assert jsonio.load_object('{"a": ' + "[" * 31 + "]" * 31 + "}")


def test_output_is_json_for_any_parser():
    out = jsonio.dumps({"m": [math.nan, math.inf, -math.inf, 0.5], "t": {1, 2} and None})

    def strict(name):
        raise AssertionError(f"{name} in the output")

    assert json.loads(out, parse_constant=strict) == {"m": ["NaN", "Infinity", "-Infinity", 0.5], "t": None}
