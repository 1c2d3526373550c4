"""Fault points kill the process that reaches them, only when asked, and only at
the asked-for time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

SCRIPT = (
    "from ledger import faults\n"
    "for step in range(3):\n"
    "    faults.reached('here')\n"
    "    print('passed', step, flush=True)\n"
)


def _run(point: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_FAULT_POINT"}
    if point is not None:
        env["LEDGER_FAULT_POINT"] = point
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_without_the_variable_nothing_happens():
    result = _run(None)
    assert (result.returncode, result.stdout.split("\n")[:3]) == (0, ["passed 0", "passed 1", "passed 2"])


def test_another_point_named_changes_nothing():
    assert _run("elsewhere").returncode == 0


def test_the_named_point_kills_by_sigkill_the_first_time():
    result = _run("here")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == ""


def test_name_at_n_kills_the_nth_time():
    result = _run("here@2")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == "passed 0\n"
