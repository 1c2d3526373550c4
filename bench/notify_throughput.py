"""How fast the notification consumer records and delivers, on the embedded log.

    python bench/notify_throughput.py [EVENTS] [DB_URL]

Prints records/s for reading + recording intents (one transaction per batch) and
deliveries/s to a file channel and to a local webhook (one HTTP POST each).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from consumers import store
from consumers.notify import NotifyConfig, NotifyConsumer
from consumers.runner import Runner
from ledger.client import Ledger
from ledger.events import ModelRetired


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        db_url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{Path(tmp) / 'views.db'}"
        log_url = f"sqlite:///{Path(tmp) / 'log.db'}"
        with Ledger.open(log_url) as ledger:
            for i in range(events):
                ledger.emit(ModelRetired(model=f"m{i}", actor="ops"))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for label, channels in (
            ("file", {"file": [{"path": str(Path(tmp) / "out.jsonl")}]}),
            ("webhook", {"webhook": [{"url": url, "secret": "s"}]}),
        ):
            consumer = NotifyConsumer(NotifyConfig.parse({"events": ["retire"], **channels}, "bench"), {})
            consumer.name = f"bench-{label}"
            with Ledger.open(log_url) as ledger:
                runner = Runner(consumer, ledger.log, db_url)
                started = time.perf_counter()
                runner.catch_up()
                recorded = time.perf_counter()
                runner.perform_due()
                done = time.perf_counter()
            read_s, send_s = recorded - started, done - recorded
            print(
                f"{label:8s} {events} events: read+record {events / read_s:8.0f} records/s, "
                f"deliver {runner.report.delivered / send_s:7.0f} deliveries/s ({db_url.split(':')[0]})"
            )
        server.shutdown()
        store.dispose_engines()


if __name__ == "__main__":
    main()
