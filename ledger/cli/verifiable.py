"""Commands of the verifiable log: ``keys generate``, ``checkpoint``, ``witness``,
``prove``, and the auditor's ``verify --receipt / --checkpoint`` options.

Thin, like the rest of the CLI: the work is in :mod:`ledger.checkpoints`,
:mod:`ledger.witness` and :mod:`ledger.evidence`. The ``verify`` options are
added to the existing ``verify`` command by :func:`extend_verify` so that the
command keeps one name whatever it checks.

Exit codes: 0 ok, 1 verification failed / inconsistent checkpoint refused,
2 bad input (malformed key, checkpoint or receipt), 3 backend, 4 not found.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from pathlib import Path

import click

from ledger import checkpoints as cp
from ledger.cli.base import settings
from ledger.errors import InputError

log = logging.getLogger(__name__)

EXIT_FAILED = 1


def _open_log(ctx: click.Context):
    from ledger import config

    log_ = config.open_log(settings(ctx)["log_url"], must_exist=True)
    ctx.call_on_close(log_.close)
    return log_


def _write(path: str | None, text: str) -> None:
    if path is None or path == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc


# --------------------------------------------------------------- keys


@click.group("keys")
def keys() -> None:
    """Ed25519 key pairs for signing checkpoints (the log's, a witness's).

    \b
    Example:
      ledger keys generate --name ledger.example.com/models --out log
    """


@keys.command("generate")
@click.option("--name", required=True, help="The key's name: the log's or witness's identity, e.g. ledger.example.com/models.")
@click.option("--out", "prefix", required=True, metavar="PREFIX", help="Writes PREFIX.key (private) and PREFIX.pub.")
@click.option("--witness", "for_witness", is_flag=True, help="A witness key: co-signs in the c2sp.org/tlog-cosignature format.")
def keys_generate(name: str, prefix: str, for_witness: bool) -> None:
    """Generate a key pair in the text form of Go's sumdb/note (a witness's
    with --witness: a tlog-cosignature key, algorithm 0x04).

    \b
    Example:
      ledger keys generate --name ledger.example.com/models --out log
      ledger keys generate --name witness.example.org --out witness --witness
    """
    from ledger.notes import ALG_COSIGNATURE, ALG_ED25519, NoteError, Signer

    try:
        signer = Signer.generate(name, ALG_COSIGNATURE if for_witness else ALG_ED25519)
    except NoteError as exc:
        raise InputError(str(exc)) from exc
    private, public = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if private.exists():
        raise InputError(f"{private} exists: refusing to overwrite a private key")
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(str(signer) + "\n")
        public.write_text(str(signer.verifier()) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the key pair {prefix}: {exc}") from exc
    click.echo(f"wrote {private} (keep it secret) and {public}: {signer.verifier()}")


# --------------------------------------------------------------- checkpoint


def _out_path(out: str, partition: int, partitions: int) -> str:
    return out if partitions == 1 else f"{out}.{partition}"


@click.command("checkpoint")
@click.option("--key", "key_path", envvar="LEDGER_LOG_KEY", required=True, type=click.Path(dir_okay=False), help="The log's private key file (keys generate).")
@click.option("--follow", is_flag=True, help="Keep running: sign every --every records or --interval seconds.")
@click.option("--every", type=click.IntRange(min=1), default=None, help="With --follow: sign once this many records arrived.")
@click.option("--interval", type=click.FloatRange(min=0.01), default=None, help="With --follow: sign every this many seconds (when records arrived).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Also write the latest checkpoint here (FILE.<partition> on several partitions).")
@click.pass_context
def checkpoint(ctx: click.Context, key_path: str, follow: bool, every: int | None, interval: float | None, out: str | None) -> None:
    """Extend the Merkle tree over the log and sign a checkpoint of every
    partition that grew. Never signs one inconsistent with a stored checkpoint.

    \b
    Example:
      ledger checkpoint --key log.key --out latest.checkpoint
      ledger checkpoint --key log.key --follow --every 1000 --interval 60
    """
    if (every or interval) and not follow:
        raise click.UsageError("--every and --interval go with --follow")
    signer = cp.load_log_signer(key_path)
    log_ = _open_log(ctx)
    checkpointer = cp.Checkpointer(log_, signer)
    count = len(log_.partitions())

    def emit(signed) -> None:
        c = signed.checkpoint
        click.echo(f"signed {c.origin}@{c.size}")
        if out:
            _write(_out_path(out, cp.partition_of(c.origin), count), str(signed))

    if follow:
        checkpointer.follow(every=every, interval=interval, on_signed=emit)
        return
    new = checkpointer.sign()
    for signed in new:
        emit(signed)
    if not new:
        for partition in sorted(checkpointer.trees.partitions):
            latest = checkpointer.store.latest(checkpointer.origin(partition))
            if latest is not None:
                click.echo(f"unchanged {latest.checkpoint.origin}@{latest.checkpoint.size}")
                if out:
                    _write(_out_path(out, partition, count), str(latest))
    if not out:
        for partition in sorted(checkpointer.trees.partitions):
            latest = checkpointer.store.latest(checkpointer.origin(partition))
            if latest is not None:
                click.echo(str(latest), nl=False)


# --------------------------------------------------------------- witness


def _notify(config_path: str | None, message: str, origin: str) -> None:
    """Best effort: one attempt on every configured notification channel."""
    if config_path is None and not any(k.startswith("LEDGER_NOTIFY_") for k in os.environ):
        return
    try:
        from consumers.notify import NotifyConfig

        config = NotifyConfig.load(Path(config_path) if config_path else None, os.environ)
        payload = {
            "subject": f"ledger witness refused a checkpoint of {origin}",
            "text": message,
            "message": {"event_type": "WitnessRefusal", "model": origin, "summary": message, "event_id": str(uuid.uuid4())},
        }
        for channel_settings in config.channels:
            channel = channel_settings.channel(os.environ, time.time)
            try:
                channel.send(str(uuid.uuid4()), 1, payload)
            finally:
                channel.close()
    except Exception as exc:  # noqa: BLE001 - an alert that fails must not hide the refusal
        log.error("could not send the witness alert: %s", exc)
        click.echo(f"warning: could not send the alert: {exc}", err=True)


@click.command("witness")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The witness's private key file.")
@click.option("--state", "state_path", required=True, type=click.Path(dir_okay=False), help="The witness's own state file (created if missing).")
@click.option("--log-key", "log_key", required=True, help="The log's public key (text or file).")
@click.option("--follow", is_flag=True, help="Keep running, co-signing each new checkpoint.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=2.0, show_default=True, help="With --follow: seconds between looks.")
@click.option("--notify-config", type=click.Path(dir_okay=False), default=None, help="Alert these notification channels on a refusal (default: LEDGER_NOTIFY_* if set).")
@click.pass_context
def witness(ctx: click.Context, key_path: str, state_path: str, log_key: str, follow: bool, interval: float, notify_config: str | None) -> None:
    """Co-sign the log's latest checkpoints after checking each is consistent
    with the last one this witness co-signed. Exit 1 (and an alert) on a fork.

    \b
    Example:
      ledger witness --key witness.key --state witness.json --log-key log.pub
    """
    from ledger.witness import Witness, WitnessState

    signer = cp.load_signer(key_path)
    verifier = cp.load_log_verifier(log_key, "--log-key")
    log_ = _open_log(ctx)
    store = cp.store_for(log_)
    witness_ = Witness(signer, WitnessState(state_path), verifier)
    trees = cp.LogTrees(log_)

    def proof(signed, old_size: int) -> list[bytes]:
        trees.update()
        tree = trees.tree(cp.partition_of(signed.checkpoint.origin))
        new_size = signed.checkpoint.size
        if not 0 <= old_size <= new_size <= tree.size:
            return []  # no honest proof exists; verification refuses an empty one
        return tree.consistency_proof(old_size, new_size)

    def once() -> None:
        for origin in store.origins():
            latest = store.latest(origin)
            if latest is None or not latest.note.signed_by(verifier):
                continue
            if latest.note.signed_by(signer.verifier()):
                continue
            try:
                cosigned = witness_.cosign(latest, proof)
            except cp.Inconsistent as exc:
                # The REFUSED line is the refusal's one line (not repeated as "error: ...").
                click.echo(f"REFUSED {exc}", err=True)
                _notify(notify_config, str(exc), origin)
                ctx.exit(EXIT_FAILED)
            store.add(cosigned)
            click.echo(f"co-signed {origin}@{cosigned.checkpoint.size}")

    once()
    while follow:
        time.sleep(interval)
        once()


# --------------------------------------------------------------- prove


@click.command("prove")
@click.argument("event_id")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the receipt here (default: stdout).")
@click.pass_context
def prove(ctx: click.Context, event_id: str, out: str | None) -> None:
    """Print an inclusion receipt for one event (c2sp.org/tlog-proof: index,
    path, the signed checkpoint; the record's bytes as its extra data), which
    ``ledger verify --receipt FILE --key PUBKEY`` checks offline.

    \b
    Example:
      ledger prove 0b5d1a52-8c1e-4c1f-9d55-3f2a0f7c9e11 --out deploy.receipt
    """
    try:
        uuid.UUID(event_id)
    except ValueError as exc:
        raise InputError(f"{event_id!r} is not an event id (a UUID)") from exc
    log_ = _open_log(ctx)
    receipt = cp.prove(log_, event_id)
    _write(out, str(receipt))
    if out:
        c = receipt.checkpoint.checkpoint
        click.echo(f"wrote the receipt of event {event_id} (leaf {receipt.index} of {c.origin}@{c.size}) to {out}")


# --------------------------------------------------------------- verify options


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def verify_receipt(receipt: str, key: str, witness_keys: tuple[str, ...] = (), min_witnesses: int = 0) -> int:
    """``verify --receipt FILE --key PUBKEY``: the exit code."""
    result = cp.verify_receipt(
        _read(receipt),
        cp.load_log_verifier(key),
        witness_keys=[cp.load_verifier(k) for k in witness_keys],
        min_witnesses=min_witnesses,
    )
    what = f"event {result.event_id}" if result.event_id else "the record"
    click.echo(f"receipt ok: {what} is leaf {result.index} of {result.origin}@{result.size}")
    return 0


def verify_checkpoints(log_, checkpoint_files: tuple[str, ...], key: str, witness_keys: tuple[str, ...] = (), min_witnesses: int = 0) -> int:
    """``verify --checkpoint FILE --key PUBKEY``: the exit code."""
    checks = cp.verify_log(
        log_,
        [_read(f) for f in checkpoint_files],
        cp.load_log_verifier(key),
        witness_keys=[cp.load_verifier(k) for k in witness_keys],
        min_witnesses=min_witnesses,
    )
    return _print_checks(checks)


def _print_checks(checks) -> int:
    failed = False
    for check in checks:
        for problem in check.problems:
            click.echo(f"FAIL {problem}")
        for problem in check.chain_problems:
            click.echo(f"FAIL {problem}")
        click.echo(check.summary())
        failed = failed or not check.ok
    return EXIT_FAILED if failed else 0


def verify_file_checkpoints(evidence_file: str, checkpoint_files: tuple[str, ...], key: str, witness_keys: tuple[str, ...] = (), min_witnesses: int = 0) -> int:
    """``verify --file F --checkpoint SAVED --key PUBKEY``: the exit code."""
    from ledger.evidence import verify_file_against

    checks = verify_file_against(
        Path(evidence_file),
        [_read(f) for f in checkpoint_files],
        cp.load_log_verifier(key),
        witness_keys=[cp.load_verifier(k) for k in witness_keys],
        min_witnesses=min_witnesses,
    )
    return _print_checks(checks)


_VERIFY_OPTIONS = [
    click.Option(["--receipt"], type=click.Path(dir_okay=False), default=None, help="Check an inclusion receipt (ledger prove) offline."),
    click.Option(
        ["--checkpoint", "checkpoints"],
        type=click.Path(dir_okay=False),
        multiple=True,
        help="Prove the log (or --file) extends this saved checkpoint (repeat: one per partition).",
    ),
    click.Option(["--key", "log_key"], default=None, metavar="PUBKEY", help="The log's public key (text or file), for --receipt/--checkpoint."),
    click.Option(["--witness-key", "witness_keys"], multiple=True, metavar="PUBKEY", help="A witness's public key (repeat)."),
    click.Option(["--min-witnesses"], type=click.IntRange(min=0), default=0, help="Require this many witness co-signatures."),
]


def extend_verify(command: click.Command) -> None:
    """Give ``verify`` the auditor's options; without them it runs as before."""
    command.params.extend(_VERIFY_OPTIONS)
    command.help = (command.help or "") + (
        "\n\n    With a saved checkpoint (the verifiable log):\n\n    \b\n"
        "      ledger verify --checkpoint saved.checkpoint --key log.pub\n"
        "      ledger verify --checkpoint saved.checkpoint --key log.pub --witness-key w.pub --min-witnesses 1\n"
        "      ledger verify --receipt event.receipt --key log.pub           # offline\n"
        "      ledger verify --file evidence.avro --checkpoint saved.checkpoint --key log.pub\n"
    )
    original = command.callback

    @functools.wraps(original)
    def callback(*args, receipt=None, checkpoints=(), log_key=None, witness_keys=(), min_witnesses=0, **kwargs):
        ctx = click.get_current_context()
        if not (receipt or checkpoints):
            if log_key or witness_keys or min_witnesses:
                raise click.UsageError("--key, --witness-key and --min-witnesses go with --receipt or --checkpoint")
            return original(*args, **kwargs)
        if not log_key:
            raise click.UsageError("--receipt and --checkpoint need the log's public key: --key PUBKEY")
        if receipt and checkpoints:
            raise click.UsageError("give --receipt or --checkpoint, not both")
        if kwargs.get("model") or kwargs.get("heads_file") or kwargs.get("as_json"):
            raise click.UsageError("--receipt and --checkpoint do not go with --model, --heads or --json")
        cp.load_log_verifier(log_key)  # a witness's key is refused before anything is read
        if receipt:
            if kwargs.get("evidence_file"):
                raise click.UsageError("--receipt is checked on its own, without --file")
            code = verify_receipt(receipt, log_key, witness_keys, min_witnesses)
        elif kwargs.get("evidence_file"):
            code = verify_file_checkpoints(kwargs["evidence_file"], checkpoints, log_key, witness_keys, min_witnesses)
        else:
            code = verify_checkpoints(_open_log(ctx), checkpoints, log_key, witness_keys, min_witnesses)
        ctx.exit(code)

    command.callback = callback


commands = [keys, checkpoint, witness, prove]
