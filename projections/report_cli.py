"""``ledger metrics`` and ``ledger report``: what managers and auditors look at.

Thin, like the other query commands: each checks its input, asks the library
(:mod:`projections.metrics`, :mod:`projections.report`) and prints or writes the
answer. The views are caught up with the log first unless ``--no-refresh``.

Registered by the lead in the CLI package (see :data:`commands`); the OpenLineage
consumer is a consumer like notify and retrain (``ledger consume openlineage``),
registered through :func:`consumers.runner.register` in :mod:`consumers.openlineage`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger.errors import BackendError, InputError
from ledger.output import chosen_format, output_options, render


def _cut(as_of_time: str | None, as_of_position: str | None):
    from projections.asof import AsOf

    if as_of_time is not None and as_of_position is not None:
        raise InputError("choose one of --as-of and --as-of-position")
    if as_of_time is not None:
        return AsOf.at(as_of_time)
    if as_of_position is not None:
        return AsOf.at_positions(as_of_position)
    return None


def _cut_options(func):
    func = click.option(
        "--as-of-position", "as_of_position", metavar="P:O[,P:O…]", default=None,
        help="As the views stood at these log positions (inclusive).",
    )(func)
    func = click.option(
        "--as-of", "as_of_time", metavar="TIME", default=None,
        help="As the views stood at TIME (ISO-8601, UTC unless a zone is given), by when the ledger recorded each event.",
    )(func)
    func = click.option(
        "--no-refresh", is_flag=True, help="Use the views as they are, without first catching them up with the log."
    )(func)
    return func


def _views(ctx: click.Context, *, refresh: bool):
    """The projection database, caught up with the log unless ``refresh`` is off
    (a database built as a frozen cut is never brought forward)."""
    from sqlalchemy.exc import SQLAlchemyError

    from projections import db, queries
    from projections.runner import project

    engine = db.open_db(ctx.obj["db_url"])
    ctx.call_on_close(engine.dispose)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["no reason given"]
        raise BackendError(f"cannot reach the projection database {db.describe(engine)}: {reason[0]}") from exc
    holds = queries.holds_views(engine)
    if not refresh:
        if not holds:
            raise BackendError(f"{db.describe(engine)} holds no views yet: run `ledger project`, or drop --no-refresh")
        return engine
    if holds and queries.status(engine)["as_of"] is not None:
        click.echo(f"note: the views in {db.describe(engine)} are a frozen cut; not refreshed", err=True)
        return engine
    from ledger.config import open_log

    log = open_log(ctx.obj["log_url"])
    try:
        project(log, engine)
    finally:
        log.close()
    return engine


def _instant(text: str | None, *, end_of_day: bool = False) -> str | None:
    from ledger.times import parse_instant
    from projections.asof import iso

    return iso(parse_instant(text, end_of_day=end_of_day)) if text else None


# --- metrics ---------------------------------------------------------------------------------


def metrics_answer(engine, *, as_of=None, models=None, since=None, until=None, production="production"):
    from projections import metrics as _metrics

    return _metrics.compute(
        _metrics.load_facts(engine), as_of=as_of, models=models or None, since=since, until=until, production=production
    )


def metrics_table(answer) -> str:
    """The summary for people: durations as ``1d 4h``."""
    from projections.metrics import human

    rows = [
        {
            **r,
            "median": human(r["median_seconds"]),
            "p90": human(r["p90_seconds"]),
        }
        for r in answer.summary
    ]
    return render(rows, ("metric", "environment", "count", "open", "median", "p90", "deployments", "per_week"), "table")


@click.command()
@click.option("--since", metavar="TIME", default=None, help="Only what ended at or after TIME (open alerts: raised at or after).")
@click.option("--until", metavar="TIME", default=None, help="Only what ended at or before TIME (a bare date: the whole day).")
@click.option("--model", "models", multiple=True, metavar="MODEL", help="Only this model (repeatable).")
@click.option("--production", default="production", show_default=True, metavar="ENV", help="Which environment is production.")
@_cut_options
@output_options
@click.pass_context
def metrics(ctx, since, until, models, production, as_of_time, as_of_position, no_refresh, fmt, as_json, as_csv):
    """Lifecycle lead times: first snapshot → production, training → production,
    approval wait, drift alert → replacement deployed (and alerts still open), and
    deploy frequency per environment — medians and 90th percentiles.

    Table and CSV print the summary (CSV in seconds); JSON adds every measurement.

    \b
    Examples:
      ledger metrics
      ledger metrics --since 2026-01-01 --until 2026-03-31 --model churn --json
      ledger metrics --as-of 2026-03-03T12:00:00Z --csv
    """
    from projections.metrics import SUMMARY_COLUMNS

    out = chosen_format(fmt, as_json, as_csv)
    start, end = _instant(since), _instant(until, end_of_day=True)
    if start and end and start > end:
        raise InputError("--since is after --until")
    for model in models:
        if "\x00" in model or not model.strip():
            raise InputError(f"malformed model name {model!r}")
    cut = _cut(as_of_time, as_of_position)
    answer = metrics_answer(_views(ctx, refresh=not no_refresh), as_of=cut, models=models, since=start, until=end, production=production)
    if out == "json":
        click.echo(json.dumps(answer.as_dict(as_of=cut, since=start, until=end), indent=2))
    elif out == "csv":
        click.echo(render(answer.summary, SUMMARY_COLUMNS, "csv"))
    else:
        click.echo(metrics_table(answer))


# --- report ----------------------------------------------------------------------------------


@click.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
@click.option("--model", "models", multiple=True, metavar="MODEL", help="Only this model (repeatable; default: every model).")
@click.option("--production", default="production", show_default=True, metavar="ENV", help="Which environment is production.")
@click.option("--no-verify", is_flag=True, help="Do not re-read the raw log to verify it (the report then says so).")
@_cut_options
@click.pass_context
def report(ctx, out_path, models, production, no_verify, as_of_time, as_of_position, no_refresh):
    """Write one self-contained HTML audit report: the inventory, and per model and
    version its lineage, timeline, maker-checker table, evaluations, drift alerts
    and response; the log's verification; lead-time charts. No network is needed
    to open it; it prints to PDF.

    \b
    Examples:
      ledger report --out audit.html
      ledger report --out churn-q1.html --as-of 2026-03-31T23:59:59Z --model churn
    """
    from projections import report as _report

    cut = _cut(as_of_time, as_of_position)
    engine = _views(ctx, refresh=not no_refresh)
    verification = None if no_verify else _report.verify_log(ctx.obj["log_url"])
    html = _report.render_report(
        _report.gather(engine, as_of=cut, models=list(models) or None, production=production, verification=verification)
    )
    try:
        out_path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    click.echo(f"wrote the audit report to {out_path}")


commands: list = [metrics, report]
"""For the lead: ``for c in commands: main.add_command(c)``."""
