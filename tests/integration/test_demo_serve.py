"""`ledger demo --serve`: the story with the people's actions recorded through the
ledger service (a real uvicorn on a loopback port), each person with a token."""

from __future__ import annotations

import pytest

from tests.integration.test_demo import check_story, ledger


@pytest.mark.slow
def test_demo_runs_through_the_service(tmp_path):
    told = ledger("demo", "--serve", cwd=tmp_path)
    output = told.stdout + told.stderr
    assert told.returncode == 0, output[-3000:]
    check_story(output, "pump-failure")
    assert "The ledger service runs at http://127.0.0.1:" in output
    # Alice's own token cannot approve what she trained (check_story: four-eyes).
    assert "LEDGER_TOKEN=<alice's token>\n$ ledger emit approve --actor alice" in told.stdout
    assert output.count("LEDGER_TOKEN=<bob's token>") == 3
    assert (tmp_path / "demo" / "principals.toml").exists()
