"""``python -m ledger.cli``."""

from ledger.cli.entry import run

run()
