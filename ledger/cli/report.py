"""``ledger metrics`` and ``ledger report``: what managers and auditors look at.

Thin, like the query commands: each parses its input, asks the library
(:mod:`projections.metrics`, :mod:`projections.report`) and prints or writes the
answer. The views are caught up with the log first unless ``--no-refresh``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger import parsing
from ledger.cli.base import MODEL, cut_options, parse_cut, refresh_option, settings, views_db
from ledger.cli.output import chosen_format, output_options, render
from ledger.errors import InputError

SUMMARY_TABLE = ("metric", "environment", "count", "open", "median", "p90", "deployments", "per_week")


def _stored(moment) -> str | None:
    from projections.asof import iso

    return iso(moment) if moment is not None else None


def metrics_table(answer) -> str:
    """The summary for people: durations as ``1d 4h``."""
    from projections.metrics import human

    rows = [{**r, "median": human(r["median_seconds"]), "p90": human(r["p90_seconds"])} for r in answer.summary]
    return render(rows, SUMMARY_TABLE, "table")


@click.command()
@click.option("--since", metavar="TIME", default=None, help="Only what ended at or after TIME (open alerts: raised at or after; ISO-8601, a bare date is midnight UTC at the start of that day).")
@click.option("--until", metavar="TIME", default=None, help="Only what ended at or before TIME (ISO-8601; a bare date is midnight UTC at the start of that day).")
@click.option("--model", "models", type=MODEL, multiple=True, metavar="MODEL", help="Only this model (repeatable).")
@click.option("--production", default="production", show_default=True, metavar="ENV", help="Which environment is production.")
@cut_options
@refresh_option
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
    from projections import metrics as _metrics

    out = chosen_format(fmt, as_json, as_csv)
    start, end = (_stored(m) for m in parsing.parse_window(since, until))
    production = parsing.parse_environment(production)
    cut = parse_cut(as_of_time, as_of_position)
    engine = views_db(ctx, refresh=not no_refresh)
    answer = _metrics.compute(
        _metrics.load_facts(engine), as_of=cut, models=list(models) or None, since=start, until=end, production=production
    )
    if out == "json":
        click.echo(json.dumps(answer.as_dict(as_of=cut, since=start, until=end), indent=2))
    elif out == "csv":
        click.echo(render(answer.summary, _metrics.SUMMARY_COLUMNS, "csv"))
    else:
        click.echo(metrics_table(answer))


@click.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
@click.option("--model", "models", type=MODEL, multiple=True, metavar="MODEL", help="Only this model (repeatable; default: every model).")
@click.option("--production", default="production", show_default=True, metavar="ENV", help="Which environment is production.")
@click.option("--no-verify", is_flag=True, help="Do not re-read the raw log to verify it (the report then says so).")
@cut_options
@refresh_option
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

    production = parsing.parse_environment(production)
    cut = parse_cut(as_of_time, as_of_position)
    engine = views_db(ctx, refresh=not no_refresh)
    verification = None if no_verify else _report.verify_log(settings(ctx)["log_url"])
    html = _report.render_report(
        _report.gather(engine, as_of=cut, models=list(models) or None, production=production, verification=verification)
    )
    try:
        out_path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    click.echo(f"wrote the audit report to {out_path}")


commands: list = [metrics, report]
