"""The ``ledger`` command line. Thin: every command calls the library and the
group turns the library's errors into one clear line and a documented exit code.

Exit codes:
  0  accepted / intact / done
  1  rejected by a lifecycle rule, a write conflict, or verification failed
  2  bad input: malformed JSON, unknown event type, missing or invalid field,
     bad option
  3  the log or database is unreachable or misconfigured
  4  unknown model, version or record
  5  `ledger drift check` only: drift detected (and recorded)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from ledger import config
from ledger.errors import BackendError, InputError, LedgerError
from ledger.identity import visible
from ledger.jsonio import dumps

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_BACKEND, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "event"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class LedgerGroup(click.Group):
    """Maps the ledger's error family to one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LedgerError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except ValidationError as exc:
            click.echo(f"error: invalid event: {_validation_message(exc)}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except click.UsageError as exc:
            # One line, like every other error (click's own is four: usage, hint, blank, error).
            where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"error: {visible(exc.format_message())}{where}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            # Whatever was accepted before the interrupt stays accepted; nothing
            # half-written exists (appends and view batches are transactions).
            click.echo("\ninterrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log",
    "log_url",
    envvar="LEDGER_LOG",
    default=None,
    metavar="URL",
    help="The event log: sqlite:///PATH (default ./.ledger/log.db) or kafka://HOST:PORT/TOPIC.",
)
@click.option(
    "--db",
    "db_url",
    envvar="LEDGER_DB",
    default=None,
    metavar="URL",
    help="SQLAlchemy URL of the projection database (default sqlite:///.ledger/views.db).",
)
@click.version_option(package_name="model-lifecycle-ledger")
@click.pass_context
def main(ctx: click.Context, log_url: str | None, db_url: str | None) -> None:
    """An event-sourced, tamper-evident ledger for the life of ML models.

    \b
    Exit codes: 0 ok, 1 rejected or verification failed, 2 bad input,
    3 log/database unavailable, 4 unknown model or version,
    5 drift detected (`drift check`).
    """
    ctx.obj = {"log_url": config.log_url(log_url), "db_url": config.db_url(db_url)}


def open_ledger(ctx: click.Context, *, must_exist: bool = False):
    from ledger.client import Ledger

    ledger = Ledger.open(ctx.obj["log_url"], must_exist=must_exist)
    ctx.call_on_close(ledger.close)
    return ledger


def _read_json(source) -> dict:
    # Read as bytes: UTF-8 whatever the locale, with or without a byte order mark.
    from ledger.jsonio import load_object

    return load_object(source.read())


@main.command()
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
@click.option("--expect-sequence", type=int, default=None, help="Fail with a conflict unless the model's stream is at this sequence.")
@click.option("--brief", is_flag=True, help="Print one line (type, model@version, sequence, hash) instead of JSON.")
@click.pass_context
def emit(ctx: click.Context, event_type: str, actor: str, source, expect_sequence: int | None, brief: bool) -> None:
    """Record one lifecycle action and print the accepted event as JSON.

    TYPE is one of: snapshot, train, evaluate, approve, reject, deploy, drift, retire.
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
    fields = _read_json(source)
    for forbidden in ("sequence", "prev_hash", "recorded_at", "event_type"):
        if forbidden in fields:
            raise InputError(f"{forbidden!r} is set by the ledger, not by the emitter")
    if "actor" in fields and fields["actor"] != actor:
        raise InputError("the JSON's actor differs from --actor")
    fields["actor"] = actor
    if "event_id" not in fields and "occurred_at" in fields:
        from ledger.event_ids import derived_id

        fields["event_id"] = str(derived_id(cls.event_type, actor, fields))  # a retry of this file is one action
    try:
        event = cls.model_validate(fields)
    except ValidationError as exc:
        raise InputError(f"invalid {event_type} event: {_validation_message(exc)}") from exc
    try:
        accepted = open_ledger(ctx).emit(event, expected_sequence=expect_sequence)
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


@main.command()
@click.option("--model", default=None, help="Verify one model's stream only.")
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
        report = open_ledger(ctx, must_exist=True).verify(model, heads=heads)
        if model is not None and not report.streams:
            from ledger.errors import NotFound

            raise NotFound(f"unknown model {model!r}: the log holds no record of it")
    if as_json:
        click.echo(dumps(report.as_dict()))
    else:
        for problem in report.problems:
            click.echo(f"FAIL {problem}")
        click.echo(report.summary())
    if not report.ok:
        ctx.exit(EXIT_REJECTED)


@main.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="The .avro file to write.")
@click.option("--model", default=None, help="Only this model's stream.")
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
    from ledger.times import parse_instant

    start = parse_instant(since) if since else None
    end = parse_instant(until) if until else None
    if start and end and start > end:
        raise InputError("--since is after --until")
    ledger = open_ledger(ctx, must_exist=True)
    if model is not None and model not in ledger.log.models():
        from ledger.errors import NotFound

        raise NotFound(f"unknown model {model!r}")
    summary = write_evidence(ledger.log.read(model=model), out, model=model, since=start, until=end, source=ctx.obj["log_url"], overwrite=force)
    noted = f", {summary['unreadable']} unreadable record(s) noted" if summary["unreadable"] else ""
    click.echo(f"wrote {summary['events']} event(s) of {len(summary['chains'])} model(s) to {out}{noted}")


def _register_commands() -> None:
    from consumers.cli import commands as consumer_commands
    from projections.cli import commands as projection_commands

    from ledger.demo import demo
    from ledger.schema_cli import schema

    for command in (*projection_commands, *consumer_commands, demo, schema):
        main.add_command(command)


_register_commands()


def run() -> None:  # pragma: no cover - console entry for `python -m ledger`
    main(prog_name="ledger")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
