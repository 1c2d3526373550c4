"""The console entry (``ledger``, ``python -m ledger.cli``). Imports nothing heavy
itself: importing the command line (click, pydantic, SQLAlchemy, the command
modules) takes a noticeable moment, and a Ctrl-C in it must end the way one during
a command does — one line and exit 130 — not with a traceback of the import."""

from __future__ import annotations

import sys

from ledger.errors import EXIT_INTERRUPTED


def _interrupted() -> None:
    sys.stderr.write("\ninterrupted\n")
    sys.exit(EXIT_INTERRUPTED)


def run() -> None:
    try:
        from ledger.cli.root import main
    except KeyboardInterrupt:
        _interrupted()
    try:
        main(prog_name="ledger")
    except KeyboardInterrupt:  # between the two (a command's own is mapped by LedgerGroup)
        _interrupted()
