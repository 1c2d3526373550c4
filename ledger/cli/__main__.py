"""``python -m ledger.cli``."""

from ledger.cli.root import run

run()
