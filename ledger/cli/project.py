"""``ledger project``: fold the log into the projection database."""

from __future__ import annotations

import logging
import signal
from contextlib import nullcontext

import click

from ledger.cli.base import open_ledger, open_views_db, parse_cut, positions_text
from ledger.errors import InputError


@click.command()
@click.option("--follow", is_flag=True, help="Keep applying new events until interrupted (Ctrl-C or SIGTERM).")
@click.option("--rebuild", is_flag=True, help="Drop the projection tables and replay the log from the start.")
@click.option("--as-of", "as_of_time", metavar="TIME", default=None, help="Rebuild the views as they were at TIME (ISO-8601, recorded time; a bare date is midnight UTC at the start of that day).")
@click.option("--as-of-position", metavar="P:O[,P:O…]", default=None, help="Rebuild the views as they were at these log positions (inclusive).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Events applied per database transaction [default: 500; 5000 in a --rebuild, a bulk load].",
)
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True, help="With --follow, seconds between looks at the log when idle.")
@click.option(
    "--group",
    metavar="NAME",
    default=None,
    help="With --follow on Kafka: share the topic's partitions with every projector of group NAME "
    "(Kafka consumer group ledger-project.TOPIC.NAME; one group per views database).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print a line per committed batch (and, with --group, per change of partitions).")
@click.pass_context
def project(
    ctx: click.Context,
    follow: bool,
    rebuild: bool,
    as_of_time: str | None,
    as_of_position: str | None,
    batch_size: int | None,
    poll_interval: float,
    group: str | None,
    verbose: bool,
) -> None:
    """Fold the log into the registry, lineage and audit views (--db).

    Applies every event after the stored positions, storing the rows and the
    positions in one transaction per batch, then exits (or, with --follow, keeps
    going). Unreadable records are quarantined, never skipped. --as-of and
    --as-of-position rebuild the views as they were at that moment.

    \b
    Example:
      ledger project                                  # catch up and exit
      ledger --db postgresql+psycopg://ledger@db/ledger project --follow
      ledger --db postgresql+psycopg://ledger@db/ledger project --follow --group views   # ×N processes
      ledger --db sqlite:///march.db project --as-of 2026-03-03T23:59:59Z
    """
    from projections import db
    from projections.runner import Runner
    from projections.runner import project as run_projection

    as_of = parse_cut(as_of_time, as_of_position)
    if follow and as_of is not None:
        raise InputError("--follow cannot be combined with --as-of or --as-of-position")
    if group is not None and not follow:
        raise InputError("--group shares the partitions among projectors that follow the log: add --follow")
    if group is not None and rebuild:
        raise InputError("--group cannot be combined with --rebuild: rebuild with one process, then follow as a group")
    log = open_ledger(ctx).log
    if group is not None:
        from ledger.groups import require_kafka

        require_kafka(log)
        if verbose:
            _log_membership()
    engine = open_views_db(ctx, check=False)

    def on_batch(batch) -> None:
        if verbose:
            extra = f", {batch.unreadable} quarantined" if batch.unreadable else ""
            click.echo(f"batch: {batch.records} record(s){extra}, now at {positions_text(batch.positions)}", err=True)

    if not follow:
        report = run_projection(log, engine, rebuild=rebuild, as_of=as_of, batch_size=batch_size, on_batch=on_batch)
    else:
        stopping = []

        def stop(*_):
            stopping.append(True)

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            if rebuild:
                db.drop(engine)
            runner = Runner(engine, batch_size=batch_size)
            try:
                with _membership(log, group) as assignment:
                    report = runner.follow(
                        log,
                        poll_interval=poll_interval,
                        on_batch=on_batch,
                        on_error=lambda exc, delay: click.echo(f"error: {exc}; trying again in {delay:.0f} s", err=True),
                        should_stop=lambda: bool(stopping),
                        group=assignment,
                    )
            except KeyboardInterrupt:
                report = None
        finally:
            signal.signal(signal.SIGTERM, previous)
        if report is None:
            click.echo("interrupted; the last committed batch is kept", err=True)
            return
    where = db.describe(engine)
    at = Runner(engine).position()
    cut = f" {as_of.describe()}" if as_of is not None else ""
    quarantined = f", {report.unreadable} unreadable record(s) quarantined" if report.unreadable else ""
    click.echo(
        f"applied {report.records} record(s) in {report.batches} batch(es){quarantined}{cut}; "
        f"at {positions_text(at)}; views in {where}"
    )


def _log_membership() -> None:
    """-v with --group: say on stderr when partitions come and go (and when a batch
    is refused because another projector applied its partition)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("ledger.groups", "projections.runner"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _membership(log, group: str | None):
    """The group's share of partitions for this process (None: all of them)."""
    if group is None:
        return nullcontext(None)
    from ledger.groups import sharing

    return sharing(log, f"ledger-project.{log.topic}.{group}")


commands: list = [project]
