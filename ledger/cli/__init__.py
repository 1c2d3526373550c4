"""The ``ledger`` command line, on top of the library: :mod:`ledger.cli.root` is the
group, :mod:`ledger.cli.base` what every command shares, and one module per area
holds its commands (write, query, project, consume, data, demo)."""

from ledger.cli.root import main, run

__all__ = ["main", "run"]
