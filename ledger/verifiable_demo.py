"""The demo's chapters on the verifiable log: the log signs a checkpoint, a
witness co-signs it, the auditor saves it; a receipt is checked offline; later
the auditor proves the log still extends what they saved."""

from __future__ import annotations

from pathlib import Path

LOG_KEY_NAME = "ledger.demo/log"
WITNESS_KEY_NAME = "witness.demo"


def _last_event_id(log_url: str, model: str) -> str:
    from ledger import codec
    from ledger.config import open_log

    with open_log(log_url) as log:
        last = None
        for record in log.read(model=model):
            last = record
    return str(codec.decode(last.data).event_id)


def tell(story, log_url: str, model: str, workdir: Path, run_dir: Path) -> None:
    # Keys live beside every run of the demo: a log keeps one key.
    log_key, log_pub = workdir / "log.key", workdir / "log.pub"
    witness_key, witness_pub = workdir / "witness.key", workdir / "witness.pub"
    saved = run_dir / "auditor.checkpoint"

    story.chapter("The log signs a checkpoint of its Merkle tree; a witness co-signs it")
    if not log_key.exists():
        story.run("keys", "generate", "--name", LOG_KEY_NAME, "--out", str(workdir / "log"))
    if not witness_key.exists():
        story.run("keys", "generate", "--name", WITNESS_KEY_NAME, "--out", str(workdir / "witness"), "--witness")
    story.run("checkpoint", "--key", str(log_key))
    story.run("witness", "--key", str(witness_key), "--state", str(workdir / "witness-state.json"), "--log-key", str(log_pub))

    story.chapter("The auditor saves the co-signed checkpoint, outside the ledger")
    story.run("checkpoint", "--key", str(log_key), "--out", str(saved))
    saved_files = sorted(str(p) for p in run_dir.glob("auditor.checkpoint*"))

    story.chapter("A receipt that the last event is in the log, checked offline")
    receipt = run_dir / "last-event.receipt"
    story.run("prove", _last_event_id(log_url, model), "--out", str(receipt))
    story.run("verify", "--receipt", str(receipt), "--key", str(log_pub), "--witness-key", str(witness_pub), "--min-witnesses", "1")

    story.chapter("Later: the auditor proves the log is still an append-only extension of it")
    checkpoints = [a for path in saved_files for a in ("--checkpoint", path)]
    story.run("verify", *checkpoints, "--key", str(log_pub), "--witness-key", str(witness_pub), "--min-witnesses", "1")
