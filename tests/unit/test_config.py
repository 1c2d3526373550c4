"""Log URLs a user can get wrong: each is one clear InputError (exit 2), found
before any broker is contacted."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.config import open_log
from ledger.errors import InputError

BAD_URLS = [
    ("kafka://127.0.0.1:abc/ledger", "port"),
    ("kafka://127.0.0.1:99999/ledger", "port"),
    ("kafka://127.0.0.1:9092/bad topic!", "topic name"),
    ("kafka://127.0.0.1:9092/" + "t" * 250, "topic name"),
    ("kafka://127.0.0.1:9092/ledger?timeout_ms=0", "timeout_ms"),
    ("kafka://127.0.0.1:9092/ledger?partitions=x", "integers"),
    ("kafka:///ledger", "names no broker"),
    ("mysql://x/y", "unknown log URL scheme"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_a_bad_log_url_is_input_error(url, message):
    with pytest.raises(InputError, match=message):
        open_log(url)


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_the_cli_answers_a_bad_log_url_with_exit_2_and_one_line(url, message):
    result = CliRunner().invoke(main, ["--log", url, "verify"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
