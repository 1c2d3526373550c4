"""The ``ledger`` command line: the root group, and the one place that gathers
every command module. Thin: every command calls the library and the group turns
the library's errors into one clear line and a documented exit code (see
:mod:`ledger.cli.base`)."""

from __future__ import annotations

import click

from ledger import config
from ledger.cli import consume, data, demo, feedback, project, query, report, schema, service, verifiable, write
from ledger.cli.base import LedgerGroup


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
    5 drift detected (`drift check`), 6 field performance degraded
    (`feedback record`).
    """
    ctx.obj = {"log_url": config.log_url(log_url), "db_url": config.db_url(db_url)}


for _module in (write, project, query, report, consume, data, feedback, demo, verifiable, service, schema):
    for _command in _module.commands:
        main.add_command(_command)
verifiable.extend_verify(write.verify)  # the auditor's --receipt/--checkpoint options
