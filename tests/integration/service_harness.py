"""Run the real ledger service (uvicorn on a loopback port, in its own process)
for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ledger.service.principals import add_principal

ROOT = Path(__file__).resolve().parents[2]

ROLES = {
    "etl": ["snapshot"],
    "alice": ["train", "read"],
    "ci": ["evaluate", "read"],
    "bob": ["approve", "read"],
    "deployer": ["deploy:production", "read"],
    "runner": ["snapshot", "train", "evaluate", "act-as", "read"],
    "reader": ["read"],
    "owner": ["retire", "drift", "read"],
    "writer": ["snapshot", "train", "evaluate", "deploy:*", "read"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_principals(path: Path, roles: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Write a principals file; returns name → token."""
    return {name: add_principal(path, name, r) for name, r in (roles or ROLES).items()}


class Server:
    """``ledger serve`` as a subprocess; ``url`` once it answers /healthz."""

    def __init__(self, log_url: str, principals: Path, *, db_url: str, port: int | None = None, extra: list[str] | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = principals.parent / f"serve-{self.port}.log"
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self._out = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "--log", log_url, "--db", db_url, "serve",
             "--principals", str(principals), "--port", str(self.port), "--log-level", os.environ.get("LEDGER_TEST_SERVE_LOG", "warning"), *(extra or [])],
            stdout=self._out, stderr=subprocess.STDOUT, env=environment, cwd=principals.parent,
        )

    def wait_ready(self, timeout: float = 60.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ledger serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        output = self.output()
        self.stop()  # __exit__ does not run when __enter__ raises: nothing is left running
        raise RuntimeError(f"ledger serve not ready after {timeout} s:\n{output}")

    def output(self) -> str:
        self._out.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def __enter__(self) -> Server:
        return self.wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()


def client(server: Server, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)

# --- the fixtures the service tests share: each log backend, principals, a running service


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request, tmp_path):
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("kafka_log_url")


@pytest.fixture
def tokens(tmp_path):
    return make_principals(tmp_path / "principals.toml")


@pytest.fixture
def server(log_url, tokens, tmp_path):
    with Server(log_url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'views.db'}") as running:
        yield running
