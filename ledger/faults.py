"""Fault points, for crash tests only.

Production code marks the moments where a crash matters most (an effect done but
not yet recorded, a batch applied but not yet committed) with
``faults.reached("name")``. Nothing happens unless the process was started with
the environment variable ``LEDGER_FAULT_POINT`` naming that point: then the process
sends itself SIGKILL there — a real, uncatchable death, no ``finally`` and no
``atexit`` run, exactly as under ``kill -9`` or the OOM killer. ``name@N`` kills
at the N-th time the point is reached (default the first).

Only tests set the variable. Never set it in a deployment: it exists so that
tests kill real processes at chosen moments instead of simulating a crash with an
exception or an ``os._exit`` inside the code under test.

Points: ``retrain-after-artifact`` (consumers/retrain.py), ``notify-after-send``
(consumers/notify.py), ``project-before-commit`` (projections/runner.py).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "LEDGER_FAULT_POINT"

_reached: Counter[str] = Counter()


def reached(name: str) -> None:
    """Die here by SIGKILL if ``LEDGER_FAULT_POINT`` names this point (and count)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
