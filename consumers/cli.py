"""Commands this package adds to the ``ledger`` CLI (registered by ledger.cli)."""

from __future__ import annotations

commands: list = []
