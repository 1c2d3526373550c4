"""Datasets as the ledger sees them: a CSV file checked against a data contract,
summarised into feature statistics, hashed, and kept for later retraining.

Pure: :func:`parse_csv_text`, :func:`validate` and :class:`Dataset` turn text into
checked, unit-converted columns; reading and keeping files is
:mod:`ledger.data.datasets`'s.

Rules a CSV is held to (the contract is the authority):

* every contract column must be present (extra columns are ignored: production
  extracts often carry ids the model never sees); header names may carry a unit
  as ``name[unit]``, e.g. ``air_temperature[C]``. A header without a unit is taken
  to be in the contract's unit; a unit that differs from the contract's is
  converted when :mod:`ledger.data.units` knows the conversion, else refused;
* a value must parse as the column's dtype and lie within its bounds (after unit
  conversion);
* missing cells (empty, ``NA``, ``N/A``, ``NaN``, ``null``, ``None``) follow the
  column's policy: ``reject`` refuses the file naming column and line; ``allow``
  keeps them missing (left out of the statistics); ``impute_mean`` keeps them
  missing in the canonical data and fills them with the mean when the data is used
  (:meth:`Dataset.matrix`) — the reference snapshot's mean when one is given.

Feature statistics cover numeric (float, int, bool) columns other than the target,
over observed values only: ``std`` is the sample standard deviation (ddof=1), and
``quantiles`` are the values at the 101 probabilities 0, 0.01, …, 1 (numpy's linear
interpolation), which :mod:`ledger.data.drift` reads as the reference distribution.

The content hash is ``sha256:`` + the SHA-256 of the canonical bytes: the contract
columns in contract order, in the contract's units, one row per line, floats in
Python's shortest round-trip form, missing cells empty. The same data therefore has
the same hash whatever its column order, extra columns or units in the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime

import numpy as np

from ledger.data import units
from ledger.errors import InputError
from ledger.events import ColumnSpec, DataContract, DataSnapshotted, FeatureStats

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
QUANTILE_COUNT = 101
NUMERIC_DTYPES = frozenset({"float", "int", "bool"})
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_HEADER = re.compile(r"^\s*(?P<name>[^\[\]]*?)\s*(?:\[(?P<unit>[^\[\]]*)\])?\s*$")
_MAX_REPORTED = 5


# --- reading ------------------------------------------------------------------


@dataclass(frozen=True)
class RawTable:
    """A CSV file's cells as text, with the units its header names."""

    source: str
    names: tuple[str, ...]
    units: tuple[str | None, ...]
    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]
    """The file line each row starts on (the header is line 1), for messages."""


def parse_header(cell: str) -> tuple[str, str | None]:
    """``"air_temperature[C]"`` → ``("air_temperature", "C")``."""
    match = _HEADER.match(cell)
    if match is None or not match.group("name"):
        raise InputError(f"cannot read column header {cell!r}: expected NAME or NAME[UNIT]")
    unit = match.group("unit")
    return match.group("name"), (unit.strip() or None) if unit is not None else None


def parse_csv_text(text: str, source: str = "<data>") -> RawTable:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{source}: the file is empty (a header row is required)") from None
    except csv.Error as exc:
        raise InputError(f"{source}: malformed CSV header: {exc}") from exc
    parsed = [parse_header(cell) for cell in header]
    names = tuple(name for name, _ in parsed)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{source}: duplicate column(s) in the header: {', '.join(duplicates)}")
    rows, lines = [], []
    try:
        line = reader.line_num + 1
        for row in reader:
            if not row:  # csv yields [] for blank lines; they carry no data
                line = reader.line_num + 1
                continue
            if len(row) != len(names):
                raise InputError(
                    f"{source}, line {line}: {len(row)} cell(s) where the header has {len(names)}"
                )
            rows.append(tuple(row))
            lines.append(line)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{source}, line {reader.line_num}: malformed CSV: {exc}") from exc
    return RawTable(source, names, tuple(u for _, u in parsed), tuple(rows), tuple(lines))


# --- checking -----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    spec: ColumnSpec
    values: np.ndarray
    """float64 with NaN for missing (numeric dtypes); object with None otherwise."""

    @property
    def numeric(self) -> bool:
        return self.spec.dtype in NUMERIC_DTYPES

    @property
    def missing(self) -> int:
        if self.numeric:
            return int(np.isnan(self.values).sum())
        return sum(v is None for v in self.values)

    def observed(self) -> np.ndarray:
        """The non-missing values (numeric columns)."""
        return self.values[~np.isnan(self.values)]


def _parse(spec: ColumnSpec, text: str, convert) -> float | str | datetime:
    dtype = spec.dtype
    if dtype == "float":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return float(convert(value))
    if dtype == "int":
        number = float(text)
        if not number.is_integer():
            raise ValueError("not an integer")
        return float(convert(number))
    if dtype == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return 1.0
        if lowered in _FALSE:
            return 0.0
        raise ValueError("not a boolean (true/false, yes/no, 1/0)")
    if dtype == "datetime":
        return datetime.fromisoformat(text.strip())
    return text  # string, category


def _column_converter(spec: ColumnSpec, file_unit: str | None, source: str):
    if file_unit is None or units.same_unit(file_unit, spec.unit):
        return lambda v: v
    if spec.unit is None:
        raise InputError(
            f"{source}: column {spec.name!r} is unitless in the data contract but the file says [{file_unit}]"
        )
    if spec.dtype not in ("float", "int"):
        raise InputError(f"{source}: column {spec.name!r} ({spec.dtype}) cannot carry a unit")
    try:
        return units.converter(file_unit, spec.unit)
    except InputError as exc:
        raise InputError(f"{source}: column {spec.name!r}: {exc}") from exc


def validate(table: RawTable, contract: DataContract) -> Dataset:
    """Check ``table`` against ``contract``; return its columns in contract units.

    Raises :class:`InputError` naming the column and line of the first problems."""
    if not contract.columns:
        raise InputError("the data contract names no column: there is nothing to check or keep")
    index = {name: i for i, name in enumerate(table.names)}
    absent = [c.name for c in contract.columns if c.name not in index]
    if contract.target and contract.target not in {c.name for c in contract.columns}:
        raise InputError(f"the data contract's target {contract.target!r} is not one of its columns")
    if absent:
        raise InputError(f"{table.source}: missing contract column(s): {', '.join(absent)}")
    if not table.rows:
        raise InputError(f"{table.source}: no data rows after the header")

    problems: list[str] = []
    columns: dict[str, Column] = {}
    for spec in contract.columns:
        position = index[spec.name]
        convert = _column_converter(spec, table.units[position], table.source)
        numeric = spec.dtype in NUMERIC_DTYPES
        values = np.full(len(table.rows), np.nan) if numeric else np.empty(len(table.rows), dtype=object)
        for r, row in enumerate(table.rows):
            text = row[position]
            where = f"column {spec.name!r}, line {table.lines[r]}"
            if text.strip().lower() in MISSING_TOKENS:
                if spec.missing == "reject":
                    problems.append(f"{where}: missing value, and the contract rejects missing data")
                continue
            try:
                value = _parse(spec, text, convert)
            except ValueError as exc:
                problems.append(f"{where}: {text!r} is not a valid {spec.dtype} ({exc})")
                continue
            if numeric:
                if spec.minimum is not None and value < spec.minimum:
                    problems.append(f"{where}: {value:g} is below the minimum {spec.minimum:g}{_unit(spec)}")
                if spec.maximum is not None and value > spec.maximum:
                    problems.append(f"{where}: {value:g} is above the maximum {spec.maximum:g}{_unit(spec)}")
            values[r] = value
        columns[spec.name] = Column(spec, values)
    if problems:
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise InputError(f"{table.source}: " + "; ".join(problems[:_MAX_REPORTED]) + more)
    return Dataset(contract, columns, len(table.rows))


def _unit(spec: ColumnSpec) -> str:
    return f" {spec.unit}" if spec.unit else ""


# --- the checked data ---------------------------------------------------------


def _cell(spec: ColumnSpec, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec.dtype == "bool":
        return "true" if value else "false"
    if spec.dtype in ("float", "int"):
        value = float(value)
        if spec.dtype == "int" and value.is_integer() and spec.unit is None:
            return str(int(value))
        return repr(value)
    if spec.dtype == "datetime":
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Dataset:
    contract: DataContract
    columns: dict[str, Column]
    row_count: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Numeric contract columns other than the target: what drift and training use."""
        return tuple(
            c.name for c in self.contract.columns if c.dtype in NUMERIC_DTYPES and c.name != self.contract.target
        )

    def canonical_bytes(self) -> bytes:
        return self._canonical

    @cached_property
    def _canonical(self) -> bytes:  # computed once: hashing, storing and the event all need it
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        specs = self.contract.columns
        writer.writerow([f"{s.name}[{s.unit}]" if s.unit else s.name for s in specs])
        for r in range(self.row_count):
            writer.writerow([_cell(s, self.columns[s.name].values[r]) for s in specs])
        return buffer.getvalue().encode("utf-8")

    @property
    def content_hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def feature_stats(self) -> tuple[FeatureStats, ...]:
        return tuple(feature_stats(name, self.columns[name].values) for name in self.feature_names)

    def matrix(
        self,
        names: Iterable[str] | None = None,
        *,
        impute: bool = True,
        impute_means: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Feature columns as a float matrix; with ``impute``, ``impute_mean`` columns
        are filled with the mean (``impute_means[name]`` when given, e.g. the
        reference snapshot's, else this data's own); other gaps stay NaN."""
        names = tuple(names) if names is not None else self.feature_names
        out = np.empty((self.row_count, len(names)))
        for j, name in enumerate(names):
            column = self.columns[name]
            values = column.values.astype(float)
            if impute and column.spec.missing == "impute_mean":
                gaps = np.isnan(values)
                if gaps.any():
                    fill = (impute_means or {}).get(name)
                    if fill is None:
                        observed = values[~gaps]
                        fill = float(observed.mean()) if observed.size else 0.0
                    values = np.where(gaps, fill, values)
            out[:, j] = values
        return out

    def target(self) -> np.ndarray:
        if not self.contract.target:
            raise InputError("the data contract names no target column")
        column = self.columns[self.contract.target]
        if column.missing:
            raise InputError(f"target column {column.spec.name!r} has {column.missing} missing value(s)")
        return column.values


def feature_stats(name: str, values: np.ndarray) -> FeatureStats:
    values = np.asarray(values, dtype=float)
    observed = values[~np.isnan(values)]
    missing = int(values.size - observed.size)
    if observed.size == 0:
        return FeatureStats(name=name, count=0, missing=missing)
    quantiles = np.quantile(observed, np.linspace(0.0, 1.0, QUANTILE_COUNT))
    return FeatureStats(
        name=name,
        count=int(observed.size),
        missing=missing,
        mean=float(observed.mean()),
        std=float(observed.std(ddof=1)) if observed.size > 1 else 0.0,
        minimum=float(observed.min()),
        maximum=float(observed.max()),
        quantiles=tuple(float(q) for q in quantiles),
    )


def default_snapshot_id(dataset: str, content_hash: str) -> str:
    """``<dataset>-<first 12 hex digits of the content hash>``: the same data gets the
    same id, so registering it twice is recognisably the same snapshot."""
    return f"{dataset}-{content_hash.removeprefix('sha256:')[:12]}"


def snapshot_event(
    data: Dataset,
    *,
    model: str,
    dataset: str,
    actor: str,
    uri: str | None,
    snapshot_id: str | None = None,
    **envelope,
) -> DataSnapshotted:
    """The ``DataSnapshotted`` draft describing ``data``."""
    content_hash = data.content_hash
    return DataSnapshotted(
        model=model,
        actor=actor,
        dataset=dataset,
        snapshot_id=snapshot_id or default_snapshot_id(dataset, content_hash),
        content_hash=content_hash,
        row_count=data.row_count,
        uri=uri,
        contract=data.contract,
        feature_stats=data.feature_stats(),
        **envelope,
    )
