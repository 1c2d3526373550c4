"""The verifiable log's costs: tree building, proof checking, the auditor's
``verify --checkpoint``, and what a running ``checkpoint --follow`` costs appends.

    python bench/checkpoint.py [--records 1000000] [--appends 300] [--rounds 3]
                               [--skip-big] [--only-appends]

Prints
* building the Merkle tree from scratch over ``--records`` record bytes (in
  memory), and over the same records read back from an embedded log;
* verifying an inclusion and a consistency proof in a tree of that size (mean
  of 2,000 each);
* ``verify_log`` (what ``ledger verify --checkpoint`` runs: tree rebuilt from the
  records, consistency proofs, the chains of the records after the checkpoint)
  over an embedded log of ``--records`` events;
* single-event append rate on the embedded log with and without a
  ``ledger checkpoint --follow --every 100 --interval 1`` process running (one
  follower, paused with SIGSTOP for the rounds without it; rounds alternate).

The big log is generated once directly into SQLite (valid chained events of
1,000 models, each a run of data snapshots) and cached under ``bench/.cache/``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ledger import codec, merkle, samples
from ledger.events import GENESIS_HASH

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"


def _generate_log(path: Path, records: int, models: int = 1000) -> None:
    from ledger.backends.sqlite import SCHEMA

    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=OFF")
    heads = {}
    started = time.perf_counter()
    template = {m: samples.snapshot(f"model-{m:04d}") for m in range(models)}
    from datetime import datetime, timezone

    recorded = datetime(2026, 1, 1, tzinfo=timezone.utc)
    batch = []
    for i in range(records):
        m = i % models
        sequence, previous = heads.get(m, (0, GENESIS_HASH))
        event = template[m].model_copy(
            update={
                "snapshot_id": f"s{sequence + 1}",
                "event_id": uuid.UUID(int=i + 1, version=4),
                "sequence": sequence + 1,
                "prev_hash": previous,
                "recorded_at": recorded,
            }
        )
        encoded = codec.encode(event)
        digest = hashlib.sha256(encoded.data).hexdigest()
        heads[m] = (sequence + 1, digest)
        batch.append((event.model, sequence + 1, str(event.event_id), encoded.event_type, encoded.fingerprint, encoded.data, digest, 0))
        if len(batch) == 10_000:
            conn.executemany(
                "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms) VALUES (?,?,?,?,?,?,?,?)",
                batch,
            )
            batch.clear()
            print(f"  generating: {i + 1} events, {time.perf_counter() - started:.0f} s", end="\r", flush=True)
    if batch:
        conn.executemany(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms) VALUES (?,?,?,?,?,?,?,?)",
            batch,
        )
    conn.commit()
    conn.close()
    tmp.rename(path)
    print(f"  generated {records} events in {time.perf_counter() - started:.0f} s{' ' * 20}")


def big_log(records: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"log-{records}.db"
    if not path.exists():
        _generate_log(path, records)
    return path


def tree_figures(records: int) -> merkle.Tree:
    data = [os.urandom(40) + i.to_bytes(8, "big") + b"x" * 250 for i in range(records)]
    started = time.perf_counter()
    tree = merkle.Tree()
    tree.append_data(data)
    root = tree.root()
    elapsed = time.perf_counter() - started
    print(f"tree from scratch, {records} records of 298 bytes (in memory): {elapsed:6.2f} s  (root {root.hex()[:16]}…)")
    return tree


def proof_figures(tree: merkle.Tree, runs: int = 2000) -> None:
    size = tree.size
    root = tree.root()
    index = size // 3 + 7
    leaf = tree.leaf(index)
    inclusion = tree.inclusion_proof(index)
    started = time.perf_counter()
    for _ in range(runs):
        merkle.verify_inclusion(index, size, leaf, inclusion, root)
    per = (time.perf_counter() - started) / runs
    print(f"inclusion proof ({len(inclusion)} hashes) verified in {per * 1e6:8.1f} µs")
    old = size // 2 + 3
    old_root = tree.root(old)
    consistency = tree.consistency_proof(old)
    started = time.perf_counter()
    for _ in range(runs):
        merkle.verify_consistency(old, size, consistency, old_root, root)
    per = (time.perf_counter() - started) / runs
    print(f"consistency proof ({len(consistency)} hashes) verified in {per * 1e6:8.1f} µs")


def log_figures(records: int) -> None:
    from ledger import checkpoints as cp
    from ledger.backends.sqlite import SqliteLog
    from ledger.notes import Signer

    path = big_log(records)
    work = Path(tempfile.mkdtemp(prefix="bench-checkpoint-"))
    copy = work / "log.db"
    copy.write_bytes(path.read_bytes())
    signer = Signer.generate("bench.example/ledger")
    log = SqliteLog(copy)
    try:
        started = time.perf_counter()
        checkpointer = cp.Checkpointer(log, signer)
        signed = checkpointer.sign()
        elapsed = time.perf_counter() - started
        print(f"checkpoint (tree from the embedded log, {records} records, signed): {elapsed:6.2f} s")
        started = time.perf_counter()
        checks = cp.verify_log(log, [str(signed[0])], signer.verifier())
        elapsed = time.perf_counter() - started
        status = "consistent" if all(c.ok for c in checks) else "FAILED"
        print(f"verify --checkpoint over {records} events (tree, proofs, chains after it): {elapsed:6.2f} s  ({status})")
    finally:
        log.close()


def _appends(url: str, count: int, tag: str) -> float:
    from ledger.client import Ledger

    with Ledger.open(url) as ledger:
        ledger.emit(samples.snapshot(f"warm-{tag}", "w"))
        drafts = [samples.snapshot(f"m{i % 4}-{tag}", f"{tag}-{i}") for i in range(count)]
        started = time.perf_counter()
        for draft in drafts:
            ledger.emit(draft)
        return count / (time.perf_counter() - started)


def append_figures(appends: int, rounds: int = 3) -> None:
    """One follower process for the whole run, paused (SIGSTOP) for the rounds
    without it: rounds alternate, so a busy shared machine's drift hits both
    sides alike; medians are printed."""
    import signal

    from ledger.notes import Signer

    work = Path(tempfile.mkdtemp(prefix="bench-append-"))
    url = f"sqlite:///{work / 'log.db'}"
    key = work / "log.key"
    key.write_text(str(Signer.generate("bench.example/ledger")) + "\n")
    without, with_ = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    _appends(url, 50, "warm")
    follower = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "--log", url, "checkpoint", "--key", str(key), "--follow", "--every", "100", "--interval", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        time.sleep(3.0)  # started, and signed what is there
        for r in range(rounds):
            follower.send_signal(signal.SIGSTOP)
            without.append(_appends(url, appends, f"a{r}"))
            follower.send_signal(signal.SIGCONT)
            time.sleep(1.5)  # it catches up with the paused round's records
            with_.append(_appends(url, appends, f"b{r}"))
    finally:
        follower.send_signal(signal.SIGCONT)
        follower.terminate()
        out, _ = follower.communicate(timeout=10)
    a, b = sorted(without)[len(without) // 2], sorted(with_)[len(with_) // 2]
    signed = out.count("signed ")
    print(f"appends without checkpoint --follow: {a:8.1f} events/s (median of {rounds} runs of {appends})")
    change = 100 * (b - a) / a
    print(
        f"appends with    checkpoint --follow: {b:8.1f} events/s ({abs(change):.1f}% {'lower' if change < 0 else 'higher'}; "
        f"it signed {signed} checkpoints)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="Append runs with and without the follower (medians).")
    parser.add_argument("--skip-big", action="store_true", help="Skip the big embedded log (generation takes minutes once).")
    parser.add_argument("--only-appends", action="store_true", help="Only the append rates.")
    args = parser.parse_args()
    if not args.only_appends:
        tree = tree_figures(args.records)
        proof_figures(tree)
        del tree
        if not args.skip_big:
            log_figures(args.records)
    append_figures(args.appends, args.rounds)


if __name__ == "__main__":
    main()
