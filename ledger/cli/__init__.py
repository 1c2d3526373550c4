"""The ``ledger`` command line, on top of the library: :mod:`ledger.cli.root` is the
group, :mod:`ledger.cli.base` what every command shares, and one module per area
holds its commands (write, query, project, consume, data, demo).

``main`` (the click group) is loaded on first use, not on import, so
that the console entry (:mod:`ledger.cli.entry`) is running, and handles Ctrl-C,
before the command modules and their libraries are imported."""

from __future__ import annotations

from ledger.cli.entry import run

__all__ = ["main", "run"]


def __getattr__(name: str):
    if name == "main":
        from ledger.cli.root import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
