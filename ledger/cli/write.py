"""Commands that write or check the raw log: ``emit``, ``verify`` and ``export``."""

from __future__ import annotations

import click
from pydantic import ValidationError

from ledger import parsing
from ledger.cli.base import EXIT_REJECTED, MODEL, open_ledger, read_json, settings, validation_message
from ledger.errors import BackendError, InputError, NotFound
from ledger.jsonio import dumps


@click.command()
@click.argument("event_type", metavar="TYPE")
@click.option("--actor", required=True, help="Who or which service performs the action.")
@click.option(
    "--json",
    "source",
    type=click.File("rb"),
    required=True,
    metavar="FILE|-",
    help="The event's fields as a JSON object (- for stdin).",
)
@click.option("--expect-sequence", type=click.IntRange(min=0, max=2**63 - 1), default=None, help="Fail with a conflict unless the model's stream is at this sequence.")
@click.option("--brief", is_flag=True, help="Print one line (type, model@version, sequence, hash) instead of JSON.")
@click.pass_context
def emit(ctx: click.Context, event_type: str, actor: str, source, expect_sequence: int | None, brief: bool) -> None:
    """Record one lifecycle action and print the accepted event as JSON.

    TYPE is one of: snapshot, train, evaluate, approve, reject, deploy, drift, retire,
    feedback, degraded.
    `retire` with a version retires that version; without one it retires the
    whole model for good: nothing more is accepted under its name (refused for a
    model with no events).

    Retrying safely: when the JSON gives `occurred_at` and no `event_id`, the
    event id is derived from the input, so sending the same file again (after a
    time-out) records the action once ("already recorded"). Without either, a
    retry is a new action: add the `event_id` an error message prints.

    \b
    Example:
      echo '{"model": "churn", "version": 3, "environment": "production"}' \\
        | ledger emit deploy --actor deployer --json -
    """
    from ledger.client import event_class

    cls = event_class(event_type)
    fields = read_json(source)
    for forbidden in ("sequence", "prev_hash", "recorded_at", "event_type"):
        if forbidden in fields:
            raise InputError(f"{forbidden!r} is set by the ledger, not by the emitter")
    if fields.get("recorded_by", "") is None:
        del fields["recorded_by"]  # null claims nothing
    if "recorded_by" in fields:
        # Only the service knows who authenticated; here --actor is declared.
        raise InputError("'recorded_by' is set by the ledger service (the authenticated principal), not by the emitter")
    if "actor" in fields and fields["actor"] != actor:
        raise InputError("the JSON's actor differs from --actor")
    fields["actor"] = actor
    if "event_id" not in fields and "occurred_at" in fields:
        from ledger.event_ids import derived_id

        fields["event_id"] = str(derived_id(cls.event_type, actor, fields))  # a retry of this file is one action
    try:
        event = cls.model_validate(fields)
    except ValidationError as exc:
        raise InputError(f"invalid {event_type} event: {validation_message(exc)}") from exc
    try:
        from ledger.http_client import HttpLedger

        # LEDGER_URL set: the service records the event (issue 11), retrying safely.
        remote = HttpLedger.from_env()
        if remote is not None:
            ctx.call_on_close(remote.close)
        accepted = (remote or open_ledger(ctx)).emit(event, expected_sequence=expect_sequence)
    except BackendError as exc:
        if "event_id" in fields:
            raise
        # The id was made up here: without it the user cannot retry safely.
        raise BackendError(
            f'{exc} [to retry safely, add "event_id": "{event.event_id}" to the JSON]'
        ) from exc
    if brief:
        e = accepted.event
        target = f"{e.model}@{e.version}" if e.version is not None else e.model
        again = " (already recorded)" if accepted.duplicate else ""
        click.echo(f"accepted {e.event_type} {target} #{e.sequence} by {e.actor}, hash {accepted.hash[:16]}…{again}")
    else:
        click.echo(dumps(accepted.as_dict()))


@click.command()
@click.option("--model", type=MODEL, default=None, help="Verify one model's stream only.")
@click.option(
    "--file",
    "evidence_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Verify an evidence file written by `ledger export` instead of the log (offline).",
)
@click.option(
    "--heads",
    "heads_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also require the chain heads recorded earlier in this evidence file or `verify --json` report.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(ctx: click.Context, model: str | None, evidence_file: str | None, heads_file: str | None, as_json: bool) -> None:
    """Re-read the raw log and check every stream's hash chain, sequence,
    schema and lifecycle rules. Exit 1 names the first bad event of each stream.

    \b
    Example:
      ledger verify
      ledger verify --model churn --json
      ledger verify --file evidence.avro      # offline, no broker needed
      ledger verify --heads evidence.avro     # the log still holds what was exported
    """
    if evidence_file:
        from ledger.evidence import verify_file

        if model or heads_file:
            raise click.UsageError("--file checks an evidence file whole: --model and --heads go with the log")
        report = verify_file(evidence_file)
    else:
        heads = None
        if heads_file:
            from ledger.evidence import recorded_heads

            heads = recorded_heads(heads_file)
            if model is not None and model not in heads:
                raise InputError(f"{heads_file} records no head of model {model!r}: there is nothing to check it against")
        report = open_ledger(ctx, must_exist=True).verify(model, heads=heads)
        if model is not None and not report.streams:
            raise NotFound(f"unknown model {model!r}: the log holds no record of it")
    if as_json:
        click.echo(dumps(report.as_dict()))
    else:
        for problem in report.problems:
            click.echo(f"FAIL {problem}")
        click.echo(report.summary())
    if not report.ok:
        ctx.exit(EXIT_REJECTED)


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="The .avro file to write.")
@click.option("--model", type=MODEL, default=None, help="Only this model's stream.")
@click.option("--force", is_flag=True, help="Replace --out if it exists (by default an existing file is an error).")
@click.option("--since", default=None, metavar="TIME", help="Only events recorded at or after TIME (ISO-8601; a bare date is midnight UTC at the start of that day).")
@click.option("--until", default=None, metavar="TIME", help="Only events recorded at or before TIME (ISO-8601; a bare date is midnight UTC at the start of that day).")
@click.pass_context
def export(ctx: click.Context, out: str, model: str | None, force: bool, since: str | None, until: str | None) -> None:
    """Export the raw events as an Avro Object Container File, with every writer
    schema and the chain heads, for offline verification by any Avro tool.

    \b
    Example:
      ledger export --out evidence.avro --model churn --since 2026-03-01
      ledger verify --file evidence.avro
    """
    from ledger.evidence import export as write_evidence

    start, end = parsing.parse_window(since, until)
    ledger = open_ledger(ctx, must_exist=True)
    if model is not None and model not in ledger.log.models():
        raise NotFound(f"unknown model {model!r}")
    from ledger.checkpoints import latest_texts

    summary = write_evidence(
        ledger.log.read(model=model), out, model=model, since=start, until=end, source=settings(ctx)["log_url"],
        checkpoints=latest_texts(ledger.log), overwrite=force,
    )
    noted = f", {summary['unreadable']} unreadable record(s) noted" if summary["unreadable"] else ""
    click.echo(f"wrote {summary['events']} event(s) of {len(summary['chains'])} model(s) to {out}{noted}")


commands: list = [emit, verify, export]
