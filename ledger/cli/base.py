"""What every command module shares: exit codes, the group that maps the ledger's
error family to one line and an exit code, opening the ledger and the projection
database, reading JSON input, and the click glue over :mod:`ledger.parsing`.

Command modules import this at the top; nothing outside ``ledger.cli`` does.

Exit codes:
  0  accepted / intact / done
  1  rejected by a lifecycle rule, a write conflict, or verification failed
  2  bad input: malformed JSON, unknown event type, missing or invalid field,
     bad option
  3  the log or database is unreachable or misconfigured
  4  unknown model, version or record
  5  `ledger drift check` only: drift detected (and recorded)
  6  `ledger feedback record` only: field performance degraded (alert recorded)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import click
from pydantic import ValidationError

from ledger import parsing
from ledger.errors import EXIT_INTERRUPTED, BackendError, InputError, LedgerError
from ledger.identity import visible
from ledger.jsonio import load_object
from ledger.parsing import validation_message

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_BACKEND, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_DRIFT = 5
"""``ledger drift check``: drift detected and recorded (or already recorded)."""
EXIT_DEGRADED = 6
"""``ledger feedback record``: a field metric crossed its threshold; the
degradation alert is recorded (or already was)."""


class LedgerGroup(click.Group):
    """Maps the ledger's error family to one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LedgerError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except ValidationError as exc:
            click.echo(f"error: invalid event: {validation_message(exc)}", err=True)
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


def settings(ctx: click.Context) -> dict:
    """The root group's ``--log``/``--db`` settings, from any (sub)command's context."""
    return ctx.find_root().obj


def open_ledger(ctx: click.Context, *, must_exist: bool = False):
    """The ledger on the root group's ``--log``, closed with the command."""
    from ledger.client import Ledger

    ledger = Ledger.open(settings(ctx)["log_url"], must_exist=must_exist)
    ctx.call_on_close(ledger.close)
    return ledger


def reachable(engine) -> None:
    """Fail with one line when the database cannot be reached."""
    from ledger import sql

    with sql.errors(f"cannot reach the projection database {sql.describe(engine)}"), engine.connect():
        pass


def open_views_db(ctx: click.Context, url: str | None = None, *, check: bool = True):
    """The projection database (``--db`` unless ``url``), disposed of with the command."""
    from projections import db

    engine = db.open_db(url or settings(ctx)["db_url"])
    ctx.call_on_close(engine.dispose)
    if check:
        reachable(engine)
    return engine


def cut_options(func):
    """``--as-of`` and ``--as-of-position``, read with :func:`parse_cut`."""
    func = click.option(
        "--as-of-position",
        "as_of_position",
        metavar="P:O[,P:O…]",
        default=None,
        help="Answer as the views stood at these log positions (inclusive).",
    )(func)
    func = click.option(
        "--as-of",
        "as_of_time",
        metavar="TIME",
        default=None,
        help="Answer as the views stood at TIME: an ISO-8601 date or datetime (UTC unless a zone is given; "
        "a bare date is midnight UTC at the start of that day), compared with when the ledger recorded each event.",
    )(func)
    return func


def refresh_option(func):
    """``--no-refresh``, for :func:`views_db`."""
    return click.option(
        "--no-refresh",
        is_flag=True,
        help="Answer from the views as they are, without first catching them up with the log.",
    )(func)


def views_db(ctx: click.Context, *, refresh: bool):
    """The projection database, caught up with the log unless ``refresh`` is off.
    Caught up, it also records which streams of the raw log fail verification
    (``settings(ctx)["stream_problems"]``): tampering done after the views were built."""
    from projections import db, queries, trust

    settings(ctx).pop("stream_problems", None)  # not checked unless caught up below
    engine = open_views_db(ctx)
    if not refresh:
        if not queries.holds_views(engine):
            raise BackendError(f"{db.describe(engine)} holds no views yet: run `ledger project`, or drop --no-refresh")
        return engine
    if queries.holds_views(engine):
        frozen = queries.status(engine)["as_of"]
        if frozen is not None:
            click.echo(f"note: the views in {db.describe(engine)} are a cut as of {frozen}; not refreshed", err=True)
            return engine
    from projections.runner import project

    log = open_ledger(ctx, must_exist=True).log
    project(log, engine)
    # Tampering after the views were built too, and a log that no longer holds what they applied.
    settings(ctx)["stream_problems"] = trust.stream_problems(log, engine)
    return engine


class _Parsed(click.ParamType):
    """A parameter parsed by :mod:`ledger.parsing`. Its :class:`InputError` is not
    turned into click's usage error (several lines): the group prints it as the
    one line every bad input gets, with exit 2."""

    def __init__(self, name: str, parse):
        self.name = name
        self.parse = parse

    def convert(self, value, param, ctx):
        try:
            return self.parse(value)
        except InputError as exc:
            where = param.opts[0] if param is not None and param.opts else (param.human_readable_name if param else "")
            raise InputError(f"{where}: {exc}" if where.startswith("-") else str(exc)) from None


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise InputError("must not contain a NUL character")
    return text


MODEL = _Parsed("model", parsing.parse_model)
"""A model name, matched exactly."""
TEXT = _Parsed("text", _no_nul)
"""Text matched exactly, as a bound parameter; a NUL is refused up front:
PostgreSQL cannot hold one in text, and no name in the ledger contains one."""


def read_json(source) -> dict:
    """A JSON object from a binary file (``-`` is stdin): see :func:`ledger.jsonio.load_object`
    (UTF-8 with or without a byte order mark; duplicate keys, non-finite numbers and
    deep nesting are bad input)."""
    return load_object(source.read())


def parse_cut(time_text: str | None, position_text: str | None):
    """``--as-of`` / ``--as-of-position`` as a cut of the log (or None)."""
    from projections.asof import AsOf

    if time_text is not None and position_text is not None:
        raise InputError("choose one of --as-of and --as-of-position")
    if time_text is not None:
        return AsOf.at(parsing.parse_instant(time_text))
    if position_text is not None:
        return AsOf.at_positions(parsing.parse_positions(position_text))
    return None


def positions_text(positions: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items())) or "-"
