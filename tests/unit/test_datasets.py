"""Data contracts: a table of good and bad CSV files, unit conversion, the
missing-data policies, the canonical hash and the feature statistics."""

from __future__ import annotations

import numpy as np
import pytest

from ledger.data import datasets, units
from ledger.errors import InputError
from ledger.events import ColumnSpec, DataContract

CONTRACT = DataContract(
    columns=(
        ColumnSpec(name="air_temperature", unit="K", minimum=200.0, maximum=400.0),
        ColumnSpec(name="speed", dtype="int", unit="rpm", minimum=0),
        ColumnSpec(name="torque", missing="allow"),
        ColumnSpec(name="wear", missing="impute_mean"),
        ColumnSpec(name="failed", dtype="bool"),
    ),
    sampling="hourly",
    target="failed",
)

GOOD = """air_temperature,speed,torque,wear,failed
300.5,1500,40.1,10,false
301.0,1600,,20,true
299.5,1400,38.0,,no
"""


def check(text: str, contract: DataContract = CONTRACT) -> datasets.Dataset:
    return datasets.validate(datasets.parse_csv_text(text, source="t.csv"), contract)


def test_a_good_file_is_read_in_contract_order_and_units():
    data = check(GOOD)
    assert data.row_count == 3
    assert data.feature_names == ("air_temperature", "speed", "torque", "wear")
    assert data.columns["air_temperature"].values.tolist() == [300.5, 301.0, 299.5]
    assert data.target().tolist() == [0.0, 1.0, 0.0]


# (case, csv text, fragments the error must contain)
BAD = [
    ("missing column", "air_temperature,speed,torque,failed\n300,1,1,true\n", ["missing contract column", "wear"]),
    ("reject missing", "air_temperature,speed,torque,wear,failed\n,1500,1,1,true\n", ["air_temperature", "line 2", "missing"]),
    ("reject NA token", "air_temperature,speed,torque,wear,failed\n300,1500,1,1,true\n300,NA,1,1,true\n", ["speed", "line 3", "missing"]),
    ("not a float", "air_temperature,speed,torque,wear,failed\nwarm,1500,1,1,true\n", ["air_temperature", "line 2", "'warm'", "float"]),
    ("not an int", "air_temperature,speed,torque,wear,failed\n300,1500.5,1,1,true\n", ["speed", "int"]),
    ("not a bool", "air_temperature,speed,torque,wear,failed\n300,1500,1,1,maybe\n", ["failed", "bool"]),
    ("below minimum", "air_temperature,speed,torque,wear,failed\n150,1500,1,1,true\n", ["air_temperature", "below the minimum 200 K"]),
    ("above maximum after conversion", "air_temperature[C],speed,torque,wear,failed\n150,1500,1,1,true\n", ["above the maximum 400 K"]),
    ("unknown unit", "air_temperature[furlong],speed,torque,wear,failed\n1,1500,1,1,true\n", ["air_temperature", "furlong"]),
    ("wrong quantity", "air_temperature[m],speed,torque,wear,failed\n1,1500,1,1,true\n", ["temperature", "length"]),
    ("unit on a unitless column", "air_temperature,speed,torque[Nm],wear,failed\n300,1500,1,1,true\n", ["torque", "unitless"]),
    ("ragged row", "air_temperature,speed,torque,wear,failed\n300,1500,1,true\n", ["line 2", "4 cell(s)"]),
    ("duplicate header", "air_temperature,speed,speed,torque,wear,failed\n", ["duplicate", "speed"]),
    ("empty file", "", ["empty"]),
    ("infinite value", "air_temperature,speed,torque,wear,failed\ninf,1500,1,1,true\n", ["finite"]),
    ("header only", "air_temperature,speed,torque,wear,failed\n", ["no data rows"]),
    ("blank lines only", "air_temperature,speed,torque,wear,failed\n\n\n", ["no data rows"]),
]


@pytest.mark.parametrize("case,text,fragments", BAD, ids=[c[0] for c in BAD])
def test_bad_files_are_refused_naming_the_problem(case, text, fragments):
    with pytest.raises(InputError) as caught:
        check(text)
    for fragment in fragments:
        assert fragment in str(caught.value), case


def test_many_problems_are_summarised():
    rows = "".join(f"{v},1500,1,1,true\n" for v in [100] * 8)
    with pytest.raises(InputError, match=r"and 3 more"):
        check("air_temperature,speed,torque,wear,failed\n" + rows)


@pytest.mark.parametrize(
    "header,value,expected",
    [
        ("air_temperature[K]", "300", 300.0),
        ("air_temperature[C]", "26.85", 300.0),
        ("air_temperature[degC]", "26.85", 300.0),
        ("air_temperature[F]", "80.33", 300.0),
        ("air_temperature[kelvin]", "300", 300.0),
        ("air_temperature", "300", 300.0),  # no unit in the header: the contract's
    ],
)
def test_temperatures_are_converted_to_the_contract_unit(header, value, expected):
    data = check(f"{header},speed,torque,wear,failed\n{value},1500,1,1,true\n")
    assert data.columns["air_temperature"].values[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "source,target,value,expected",
    [
        ("rpm", "rad/s", 60.0, 2 * np.pi),
        ("rps", "rpm", 1.0, 60.0),
        ("mm", "m", 1500.0, 1.5),
        ("in", "cm", 1.0, 2.54),
        ("F", "C", 212.0, 100.0),
        ("K", "F", 0.0, -459.67),
        ("lb", "kg", 1.0, 0.45359237),
        ("h", "s", 2.0, 7200.0),
    ],
)
def test_unit_conversions(source, target, value, expected):
    assert units.converter(source, target)(value) == pytest.approx(expected)


def test_conversion_in_a_rotational_speed_column():
    contract = DataContract(columns=(ColumnSpec(name="speed", unit="rpm"),))
    data = check("speed[rad/s]\n3.14159265358979\n", contract)
    assert data.columns["speed"].values[0] == pytest.approx(30.0)


def test_missing_policies():
    data = check(GOOD)
    # allow: kept missing, left out of the statistics
    torque = data.columns["torque"]
    assert torque.missing == 1
    stats = {s.name: s for s in data.feature_stats()}
    assert stats["torque"].count == 2 and stats["torque"].missing == 1
    assert stats["torque"].mean == pytest.approx((40.1 + 38.0) / 2)
    # impute_mean: filled with this data's mean, or with a given reference mean
    wear = list(data.feature_names).index("wear")
    assert data.matrix()[2, wear] == pytest.approx(15.0)
    assert data.matrix(impute_means={"wear": 99.0})[2, wear] == 99.0
    assert np.isnan(data.matrix(impute=False)[2, wear])
    # allow stays NaN even when imputing
    assert np.isnan(data.matrix()[1, list(data.feature_names).index("torque")])


def test_extra_columns_are_ignored_and_do_not_change_the_hash():
    reordered = "machine,failed,wear,torque,speed,air_temperature\n" + "\n".join(
        ["m1,false,10,40.1,1500,300.5", "m2,true,20,,1600,301.0", "m3,no,,38.0,1400,299.5"]
    )
    assert check(reordered).content_hash == check(GOOD).content_hash


def test_the_same_data_in_other_units_reads_as_the_same_values():
    in_celsius = GOOD.replace("air_temperature,", "air_temperature[C],")
    for kelvin, celsius in (("300.5", "27.35"), ("301.0", "27.85"), ("299.5", "26.35")):
        in_celsius = in_celsius.replace(kelvin, celsius)
    # 27.35 °C is 300.5 K up to float rounding, so values (not hashes) compare.
    converted = check(in_celsius).columns["air_temperature"].values
    assert converted == pytest.approx([300.5, 301.0, 299.5])


def test_other_data_has_another_hash():
    assert check(GOOD.replace("300.5", "300.6")).content_hash != check(GOOD).content_hash


def test_canonical_bytes_read_back_to_the_same_hash():
    in_celsius = GOOD.replace("air_temperature,", "air_temperature[C],")
    for kelvin, celsius in (("300.5", "27.35"), ("301.0", "27.85"), ("299.5", "26.35")):
        in_celsius = in_celsius.replace(kelvin, celsius)
    data = check(in_celsius)
    again = datasets.validate(datasets.parse_csv_text(data.canonical_bytes().decode()), CONTRACT)
    assert again.content_hash == data.content_hash
    assert again.canonical_bytes() == data.canonical_bytes()


def test_feature_stats_summarise_the_observed_values():
    values = np.random.default_rng(0).normal(10, 2, size=1_000)
    stats = datasets.feature_stats("x", values)
    assert stats.count == 1_000 and stats.missing == 0
    assert stats.mean == pytest.approx(values.mean())
    assert stats.std == pytest.approx(values.std(ddof=1))
    assert (stats.minimum, stats.maximum) == (values.min(), values.max())
    assert len(stats.quantiles) == 101
    assert stats.quantiles[0] == stats.minimum and stats.quantiles[-1] == stats.maximum
    assert stats.quantiles[50] == pytest.approx(np.median(values))
    assert datasets.feature_stats("none", np.array([np.nan])).count == 0


def test_target_must_be_a_contract_column():
    contract = DataContract(columns=(ColumnSpec(name="a"),), target="label")
    with pytest.raises(InputError, match="target"):
        check("a,label\n1,0\n", contract)


def test_header_with_unit_and_spaces():
    assert datasets.parse_header(" air temperature [ C ] ") == ("air temperature", "C")
    assert datasets.parse_header("plain") == ("plain", None)
    with pytest.raises(InputError):
        datasets.parse_header("[C]")


def test_snapshot_event_describes_the_data():
    data = check(GOOD)
    event = datasets.snapshot_event(data, model="m", dataset="plant", actor="alice", uri="file:///x.csv")
    assert event.snapshot_id == "plant-" + data.content_hash.removeprefix("sha256:")[:12]
    assert event.row_count == 3 and event.contract == CONTRACT
    assert [s.name for s in event.feature_stats] == list(data.feature_names)


def test_store_is_content_addressed_and_load_checks_the_hash(tmp_path):
    data = check(GOOD)
    store = datasets.DataStore(tmp_path / "data")
    uri = store.put(data)
    assert store.put(data) == uri
    event = datasets.snapshot_event(data, model="m", dataset="plant", actor="alice", uri=uri)
    assert datasets.load_snapshot(event).content_hash == data.content_hash
    path = datasets.path_of(uri)
    path.write_bytes(path.read_bytes().replace(b"300.5", b"300.7"))
    with pytest.raises(InputError, match="changed"):
        datasets.load_snapshot(event)


def test_a_contract_without_columns_describes_no_data():
    with pytest.raises(InputError, match="names no column"):
        check(GOOD, DataContract(columns=()))
