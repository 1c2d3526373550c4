"""The end of ``ledger demo`` for managers and auditors: the lead times, then the
audit report written next to the demo's files.

For the lead (the demo module is moving): call :func:`tell` as the demo's last
chapter, before its closing line::

    from projections.demo_epilogue import tell
    report_path = tell(story, model, run_dir)
"""

from __future__ import annotations

from pathlib import Path


def tell(story, model: str, run_dir: Path) -> Path:
    """Run ``ledger metrics`` and ``ledger report`` through the demo's ``story``
    (printed as typed, like every other step); returns the report's path."""
    story.chapter("Managers: how long did it take? Auditors: one report to keep")
    story.run("metrics", "--model", model)
    out = Path(run_dir) / "report.html"
    story.run("report", "--out", str(out), "--model", model)
    return out
