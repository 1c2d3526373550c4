"""Run the service inside this process, on a real loopback socket (``ledger demo
--serve``): the same app and uvicorn as ``ledger serve``, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

from ledger.errors import BackendError
from ledger.service.app import Settings, create_app


@contextmanager
def running(settings: Settings, *, timeout: float = 60.0):
    """Yields the service's base URL once it accepts appends; stops it after."""
    import httpx
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
        )
    )
    thread = threading.Thread(target=server.run, name="ledger-service", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise BackendError(f"the ledger service did not become ready within {timeout:g} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
