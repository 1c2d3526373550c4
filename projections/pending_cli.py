"""``ledger pending``: versions waiting for a decision. A command of its own (the
lead registers it in the CLI package); the query is :func:`projections.queries.pending`."""

from __future__ import annotations

import click

from ledger.output import chosen_format, output_options, render

COLUMNS = ("model", "version", "status", "evaluations", "last_evaluation_passed", "trained_by", "verified")


@click.command("pending")
@click.option("--model", default=None, help="Only this model's versions.")
@click.option("--no-refresh", is_flag=True, help="Answer from the views as they are, without first catching them up with the log.")
@output_options
@click.pass_context
def pending(ctx, model, no_refresh, fmt, as_json, as_csv) -> None:
    """Versions waiting for a decision: evaluated, and neither approved nor
    rejected since their latest evaluation (an evaluation recorded after a
    decision makes it stale). Exit 4 for an unknown --model.

    \b
    Example:
      ledger pending
      ledger pending --model churn --json
    """
    from projections import queries
    from projections.query_cli import _trusted, _views

    out = chosen_format(fmt, as_json, as_csv)
    rows = queries.pending(_views(ctx, refresh=not no_refresh), model=model)
    click.echo(render(_trusted(ctx, rows, key="model"), COLUMNS, out))
