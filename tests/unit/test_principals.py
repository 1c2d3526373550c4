"""The principals file: roles, hashed tokens, reloading, and bad files."""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.errors import InputError
from ledger.service.principals import Principal, Principals, add_principal, token_hash


def test_a_token_is_stored_only_as_its_hash(tmp_path):
    path = tmp_path / "p.toml"
    token = add_principal(path, "alice", ["approve", "read"])
    text = path.read_text()
    assert token not in text and token_hash(token) in text
    assert os.stat(path).st_mode & 0o077 == 0
    found = Principals(path).authenticate(token)
    assert found.name == "alice" and found.roles == {"approve", "read"}
    assert Principals(path).authenticate(token + "x") is None


@pytest.mark.parametrize(
    ("roles", "role", "allowed"),
    [
        (["deploy:production"], "deploy:production", True),
        (["deploy:production"], "deploy:staging", False),
        (["deploy:*"], "deploy:staging", True),
        (["approve"], Principal.role_for("ApprovalRejected"), True),
        (["train"], Principal.role_for("ModelApproved"), False),
        (["read"], "act-as", False),
    ],
)
def test_roles(roles, role, allowed):
    assert Principal("p", "0" * 64, frozenset(roles)).may(role) is allowed


@pytest.mark.parametrize(
    "text",
    [
        "not toml [",
        '[principals.alice]\ntoken_sha256 = "short"\nroles = ["read"]',
        f'[principals.alice]\ntoken_sha256 = "{"a" * 64}"\nroles = ["sudo"]',
        f'[principals."bad name"]\ntoken_sha256 = "{"a" * 64}"\nroles = ["read"]',
        f'[principals.a]\ntoken_sha256 = "{"a" * 64}"\n[principals.b]\ntoken_sha256 = "{"a" * 64}"',
        f'[other]\nx = 1\n[principals.a]\ntoken_sha256 = "{"a" * 64}"',
    ],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        Principals(path)
    assert "\n" not in str(caught.value).strip()


def test_a_broken_edit_keeps_the_principals_loaded_before(tmp_path):
    path = tmp_path / "p.toml"
    token = add_principal(path, "alice", ["read"])
    principals = Principals(path, check_every=0)
    path.write_text(path.read_text() + "\nbroken [")
    time.sleep(0.01)
    assert principals.authenticate(token).name == "alice"


def test_cli_add_prints_the_token_once_and_refuses_a_second_add(tmp_path):
    path = tmp_path / "p.toml"
    runner = CliRunner()
    first = runner.invoke(main, ["principals", "add", "ci", "--role", "evaluate", "--file", str(path)])
    assert first.exit_code == 0, first.output
    token = first.stdout.strip()
    assert Principals(path).authenticate(token).name == "ci"
    again = runner.invoke(main, ["principals", "add", "ci", "--role", "evaluate", "--file", str(path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(main, ["principals", "add", "x", "--role", "root", "--file", str(path)])
    assert bad.exit_code == 2 and "unknown role" in bad.output


def test_serve_refuses_a_missing_principals_file_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--principals", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "cannot read the principals file" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("alias", ["ALICE", "Alice", "aIice"])
def test_a_second_principal_for_the_same_person_is_refused(tmp_path, alias):
    # Four eyes compares principals as people: two tokens for one person would let
    # them train as one and approve as the other.
    path = tmp_path / "p.toml"
    add_principal(path, "alice", ["train"])
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["principals", "add", alias, "--role", "approve", "--file", str(path)])
    assert result.exit_code == 2, result.output
    assert "is the same person as 'alice'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before
