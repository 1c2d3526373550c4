"""The ledger service under load: group commit, sequential latency, and latency
as the partition grows.

    python bench/serve.py [--kafka HOST:PORT | --no-kafka] [--clients 16]
                          [--seconds 10] [--sequential 300] [--large 100000]
                          [--client http.client|httpx] [--parts concurrent,sequential,size,failover,ceiling]

Prints, per backend (the real service on a loopback port, its own process):
* ``--clients`` concurrent clients appending snapshots to models on ONE partition
  for ``--seconds``: accepted events/s, p50/p99/max latency, conflicts (409
  concurrent-write) and other refusals;
* one client, sequential: p50/p99 per event;
* on Kafka: sequential p50 with 1,000 and with ``--large`` events already on the
  partition, each measured on a freshly started service (and its start-up time);
* on Kafka: failover — two instances (``--advertise``), SIGKILL of the one owning a
  model's partition, time until the survivor accepts the next event for it;
* the ceiling this machine sets before any ledger code runs (``ceiling``): the same
  clients against ``bench/bare_app.py`` (the service's ASGI stack answering JSON with
  no ledger behind it), and a bare kafka-python transactional producer committing one
  transaction after another (1 record, then ``--clients`` records, per transaction).

Beside each rate: CPU milliseconds per accepted event, of the service's process and
of the client processes (their ``process_time`` while they ran), and the load
average. The clients run on the same machine as the service, so on a small machine
the sum of the two bounds the rate. ``--parts`` picks what to run. The clients speak
HTTP/1.1 with keep-alive through the standard library (``--client httpx``: httpx,
which costs ~4× the CPU per request), each sending a new event (its own event id)
per request, with a real token.

Each run uses fresh topics / files. The broker defaults to ``LEDGER_TEST_KAFKA``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger import samples  # noqa: E402
from ledger.client import Ledger  # noqa: E402
from ledger.config import open_log  # noqa: E402
from ledger.http_client import draft_json  # noqa: E402
from tests.integration.service_harness import Server, make_principals  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def service_cpu_seconds(server: Server) -> float:
    """CPU time the service's process has used so far (user + system, every thread)."""
    times = psutil.Process(server.process.pid).cpu_times()
    return times.user + times.system


def models_on_partition(log_url: str, count: int, partition: int = 0) -> list[str]:
    with open_log(log_url) as log:
        return [n for n in (f"bench-{i}" for i in range(100_000)) if log.partition_for(n) == partition][:count]


class _Connection:
    """One client's keep-alive HTTP/1.1 connection, with the standard library's
    client (~0.4 ms of CPU per request here) or httpx's (~1.6 ms; ``--client httpx``)."""

    def __init__(self, url: str, token: str, kind: str):
        self.kind = kind
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if kind == "httpx":
            self.http = httpx.Client(base_url=url, headers=self.headers, timeout=60)
        else:
            parts = urlsplit(url)
            self.http = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def post(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.kind == "httpx":
            answer = self.http.post(path, json=body)
            return answer.status_code, answer.content
        self.http.request("POST", path, json.dumps(body).encode(), self.headers)
        answer = self.http.getresponse()
        return answer.status, answer.read()

    def close(self) -> None:
        self.http.close()


def _client_process(url: str, token: str, models: list[str], first: int, threads: int, ready, go, stop_at, out, kind: str) -> None:
    cpu_began = time.process_time()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        model = models[index % len(models)]
        mine, seen = [], {}
        connection = _Connection(url, token, kind)
        try:
            go.wait()
            n = 0
            while time.time() < stop_at.value:
                n += 1
                # A new event (its own event id) per request, made as a client would.
                body = draft_json(samples.snapshot(model, f"c{index}-{n}", actor="writer"))
                began = time.monotonic()
                status, content = connection.post("/v1/events", body)
                mine.append(time.monotonic() - began)
                key = str(status) if status < 400 else f"{status} {json.loads(content).get('rule')}"
                seen[key] = seen.get(key, 0) + 1
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)
            for key, count in seen.items():
                statuses[key] = statuses.get(key, 0) + count

    workers = [threading.Thread(target=client, args=(first + i,)) for i in range(threads)]
    for t in workers:
        t.start()
    ready.put(threads)
    for t in workers:
        t.join()
    out.put((latencies, statuses, time.process_time() - cpu_began))


def concurrent(server: Server, token: str, models: list[str], clients: int, seconds: float, processes: int = 4, kind: str = "http.client") -> dict:
    """``clients`` clients (threads spread over ``processes`` processes, so the
    clients' own Python does not become the bottleneck) for ``seconds``."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out, ready, go, stop_at = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs, first = [], 0
    for count in per:
        if count:
            procs.append(ctx.Process(target=_client_process, args=(server.url, token, models, first, count, ready, go, stop_at, out, kind)))
            first += count
    for proc in procs:
        proc.start()
    for _ in procs:  # every client is up before the clock starts
        ready.get(timeout=120)
    service_cpu = service_cpu_seconds(server)
    stop_at.value = time.time() + seconds
    go.set()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    client_cpu = 0.0
    for _ in procs:
        got, seen, cpu = out.get(timeout=seconds + 120)
        latencies.extend(got)
        client_cpu += cpu
        for key, count in seen.items():
            statuses[key] = statuses.get(key, 0) + count
    service_cpu = service_cpu_seconds(server) - service_cpu
    for proc in procs:
        proc.join()
    accepted = statuses.get("201", 0)
    return {
        "rate": accepted / seconds,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "statuses": statuses,
        "service_cpu_ms": 1000 * service_cpu / max(1, accepted),
        "client_cpu_ms": 1000 * client_cpu / max(1, accepted),
    }


def sequential(server: Server, token: str, model: str, count: int, prefix: str, kind: str = "http.client") -> dict:
    latencies = []
    service_cpu, client_cpu = service_cpu_seconds(server), time.process_time()
    connection = _Connection(server.url, token, kind)
    try:
        for n in range(count):
            body = draft_json(samples.snapshot(model, f"{prefix}-{n}", actor="writer"))
            began = time.monotonic()
            status, content = connection.post("/v1/events", body)
            latencies.append(time.monotonic() - began)
            assert status == 201, content
    finally:
        connection.close()
    return {
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "service_cpu_ms": 1000 * (service_cpu_seconds(server) - service_cpu) / count,
        "client_cpu_ms": 1000 * (time.process_time() - client_cpu) / count,
    }


def seed(log_url: str, models: list[str], total: int) -> float:
    """Append ``total`` events to ``models`` directly (batches of 500)."""
    began = time.monotonic()
    per_model = total // len(models)
    with Ledger.open(log_url) as ledger:
        for model in models:
            done = 0
            while done < per_model:
                size = min(500, per_model - done)
                ledger.emit_many([samples.snapshot(model, f"seed-{done + i}", actor="writer") for i in range(size)])
                done += size
    return time.monotonic() - began


def failover(log_url: str, principals: Path, token: str, workdir: Path) -> float:
    """Seconds from SIGKILL of the instance owning a model's partition to the first
    event accepted for that model by the survivor."""
    from tests.integration.service_harness import free_port

    def instance(name: str) -> Server:
        port = free_port()
        return Server(
            log_url, principals, db_url=f"sqlite:///{workdir / f'views-{name}.db'}", port=port,
            extra=["--advertise", f"http://127.0.0.1:{port}"],
        ).wait_ready(120)

    a, b = instance("a"), instance("b")
    try:
        deadline = time.monotonic() + 60
        while True:
            parts = httpx.get(f"{b.url}/readyz").json().get("partitions") or []
            others = httpx.get(f"{a.url}/readyz").json().get("partitions") or []
            if parts and others and len(parts) + len(others) == 3:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the two instances did not share the partitions")
            time.sleep(0.2)
        with open_log(log_url) as log:
            model = next(m for m in (f"fo-{i}" for i in range(1000)) if log.partition_for(m) in parts)
        with httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            assert http.post("/v1/events", json=draft_json(samples.snapshot(model, "before", actor="writer"))).status_code == 201
            b.kill()
            killed = time.monotonic()
            body = draft_json(samples.snapshot(model, "after", actor="writer"))
            while True:
                try:
                    if http.post("/v1/events", json=body).status_code in (200, 201):
                        return time.monotonic() - killed
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
    finally:
        a.stop()
        b.stop()


def cpu(result: dict) -> str:
    return (
        f"CPU per event: service {result['service_cpu_ms']:.2f} ms + clients {result['client_cpu_ms']:.2f} ms; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def fmt(result: dict) -> str:
    return (
        f"{result['rate']:,.0f} accepted/s, p50 {result['p50'] * 1000:.1f} ms, p99 {result['p99'] * 1000:.1f} ms, "
        f"max {result['max'] * 1000:.0f} ms, answers {result['statuses']}; {cpu(result)}"
    )


class BareServer:
    """``bench/bare_app.py`` on uvicorn with ``ledger serve``'s options, in its own
    process: what the ASGI stack alone costs per request on this machine."""

    def __init__(self) -> None:
        import socket
        import subprocess

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--loop", "uvloop", "--http", "httptools",
             "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("bench/bare_app.py did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def kafka_floor(bootstrap: str, transactions: int, per_transaction: int) -> dict:
    """A bare transactional producer with the ledger writer's settings, committing
    ``transactions`` transactions of ``per_transaction`` 900-byte records one after
    another: the broker round trips and kafka-python's CPU that any Kafka round
    of the service pays, with nothing of the ledger around them."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-writer", acks="all", enable_idempotence=True,
        linger_ms=0, retry_backoff_ms=20,
    )
    try:
        producer.init_transactions()
        value = b"x" * 900
        latencies = []
        cpu = time.process_time()
        for n in range(transactions):
            began = time.monotonic()
            producer.begin_transaction()
            futures = [producer.send(topic, key=b"m", value=value, partition=0) for _ in range(per_transaction)]
            for f in futures:
                f.get(timeout=30)
            producer.commit_transaction()
            latencies.append(time.monotonic() - began)
        cpu = time.process_time() - cpu
    finally:
        producer.close(timeout=5)
    return {"p50": statistics.median(latencies), "cpu_ms": 1000 * cpu / transactions, "rate": per_transaction * transactions / sum(latencies)}


def start(log_url: str, principals: Path, workdir: Path) -> tuple[Server, float]:
    began = time.monotonic()
    server = Server(log_url, principals, db_url=f"sqlite:///{workdir / f'views-{uuid.uuid4().hex[:6]}.db'}")
    server.wait_ready(600)
    return server, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("LEDGER_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--client", default="http.client", choices=["http.client", "httpx"], help="the clients' HTTP library")
    parser.add_argument("--parts", default="concurrent,sequential,size,failover,ceiling", help="what to measure (comma-separated)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        principals = workdir / "principals.toml"
        token = make_principals(principals, {"writer": ["snapshot", "read"]})["writer"]
        backends = [("embedded", f"sqlite:///{workdir / 'log.db'}")]
        if not args.no_kafka:
            backends.append(("kafka", f"kafka://{args.kafka}/bench-serve-{uuid.uuid4().hex[:8]}?partitions=3"))
        for name, log_url in backends if parts & {"concurrent", "sequential"} else []:
            models = models_on_partition(log_url, 4)
            server, ready_s = start(log_url, principals, workdir)
            try:
                if "concurrent" in parts:
                    result = concurrent(server, token, models, args.clients, args.seconds, kind=args.client)
                    print(f"{name}: {args.clients} clients, models on one partition, {args.seconds:g} s: {fmt(result)}", flush=True)
                if "sequential" in parts:
                    one = sequential(server, token, "bench-seq" if name == "embedded" else models[0], args.sequential, "seq", args.client)
                    print(
                        f"{name}: one client, sequential, {args.sequential} events: p50 {one['p50'] * 1000:.1f} ms, "
                        f"p99 {one['p99'] * 1000:.1f} ms; {cpu(one)}",
                        flush=True,
                    )
            finally:
                server.stop()

        if not args.no_kafka and "size" in parts:
            for total in (1_000, args.large):
                log_url = f"kafka://{args.kafka}/bench-serve-size-{uuid.uuid4().hex[:8]}?partitions=3"
                models = models_on_partition(log_url, 10)
                took = seed(log_url, models, total)
                server, ready_s = start(log_url, principals, workdir)
                try:
                    sequential(server, token, models[1], 20, "warm")  # the first touch folds the stream
                    one = sequential(server, token, models[1], args.sequential, "size")
                    print(
                        f"kafka: {total:,} events on the partition (seeded in {took:.0f} s): service ready in {ready_s:.1f} s, "
                        f"sequential p50 {one['p50'] * 1000:.1f} ms, p99 {one['p99'] * 1000:.1f} ms"
                    )
                finally:
                    server.stop()
        if "ceiling" in parts:
            # What this machine allows before any ledger code runs: the ASGI stack and
            # the same clients; and a bare Kafka transaction.
            bare = BareServer()
            try:
                result = concurrent(bare, token, ["bench-0"], args.clients, args.seconds, kind=args.client)
                print(f"ceiling: bench/bare_app.py (Starlette on uvicorn, no ledger), {args.clients} clients, {args.seconds:g} s: {fmt(result)}", flush=True)
                one = sequential(bare, token, "bench-0", args.sequential, "bare", args.client)
                print(f"ceiling: bench/bare_app.py, one client, sequential: p50 {one['p50'] * 1000:.2f} ms; {cpu(one)}", flush=True)
            finally:
                bare.stop()
            if not args.no_kafka:
                for size in (1, args.clients):
                    floor = kafka_floor(args.kafka, args.sequential, size)
                    print(
                        f"ceiling: a bare kafka-python transaction of {size} record(s) (begin, send, commit; "
                        f"one after another): p50 {floor['p50'] * 1000:.1f} ms, {floor['rate']:,.0f} records/s, "
                        f"CPU {floor['cpu_ms']:.2f} ms per transaction; load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        if not args.no_kafka and "failover" in parts:
            log_url = f"kafka://{args.kafka}/bench-serve-failover-{uuid.uuid4().hex[:8]}?partitions=3"
            for run in range(2):
                took = failover(log_url.replace("failover-", f"failover{run}-"), principals, token, workdir)
                print(f"kafka: failover, SIGKILL of the owner to the first event accepted by the survivor: {took:.1f} s")


if __name__ == "__main__":
    main()
