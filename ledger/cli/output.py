"""One way to print results, shared by every query command: a table for people,
JSON and CSV for scripts.

A table never writes a control character or an escape sequence to the terminal,
and no value breaks a row: such characters are shown escaped (``\x1b``, ``\n``,
``\u202e``), so a hostile name in the ledger reads as what it is. JSON is
:func:`ledger.jsonio.dumps`' (no NaN or Infinity, which are not JSON)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import click

from ledger.identity import visible
from ledger.jsonio import dumps

FORMATS = ("table", "json", "csv")


def output_options(func: Callable) -> Callable:
    """Add ``--format table|json|csv`` and the ``--json``/``--csv`` shorthands."""
    func = click.option("--csv", "as_csv", is_flag=True, help="Shorthand for --format csv.")(func)
    func = click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")(func)
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS, case_sensitive=False),
        default=None,
        help="Output format (default: table).",
    )(func)
    return func


def chosen_format(fmt: str | None, as_json: bool, as_csv: bool) -> str:
    picked = [f for f, on in (("json", as_json), ("csv", as_csv)) if on]
    if fmt:
        picked.append(fmt.lower())
    if len(set(picked)) > 1:
        raise click.UsageError("choose one output format")
    return picked[0] if picked else "table"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return visible(json.dumps(value, sort_keys=True, default=str))
    return visible(str(value))


def escaped(value):
    """``value`` (a result: dicts, lists, strings…) with every string's control and
    invisible characters shown escaped, ready to be laid out as text for a terminal.
    Keys too: hyper-parameter and metric names are printed. :func:`visible` escapes
    the backslash as well, so two different keys never become one."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {escaped(k): escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escaped(v) for v in value]
    return value


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def render(rows: Iterable[dict], columns: Sequence[str], fmt: str) -> str:
    rows = list(rows)
    if fmt == "json":
        return dumps([{k: _jsonable(v) for k, v in r.items()} for r in rows])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in columns])
        return buffer.getvalue().rstrip("\n")
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)
