"""``ledger consume`` (run a consumer over the log) and ``ledger notifications``
(what the consumers did, and what failed)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import click

from ledger.cli.base import MODEL, settings
from ledger.cli.output import chosen_format, output_options, render
from ledger.errors import InputError


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """SIGINT/SIGTERM set ``stop``: the runner finishes the effect in hand, records
    it, and returns, instead of dying between an effect and its record."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command()
@click.argument("name", metavar="CONSUMER")
@click.option("--once", "mode", flag_value="once", default=True, help="Catch up, perform due effects, exit (default).")
@click.option("--follow", "mode", flag_value="follow", help="Keep polling the log until SIGINT/SIGTERM.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The consumer's TOML configuration (see docs/notifications.md for notify).",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="With --once: how long to keep retrying failed effects whose backoff ends soon.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="With --follow: seconds between polls of the log.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True, help="Records per database transaction.")
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Re-read the whole log; effects already recorded are not performed again.",
)
@click.option(
    "--group",
    metavar="NAME",
    default=None,
    help="With --follow on Kafka: share the topic's partitions with every process of this consumer "
    "in group NAME (Kafka consumer group ledger-consume.TOPIC.CONSUMER.NAME).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every attempt on stderr.")
@click.pass_context
def consume(ctx, name, mode, config_path, max_wait, poll_interval, batch_size, from_beginning, group, verbose):
    """Run a consumer (notify, retrain, …) over the log.

    Positions, effects and dead letters live in the --db database. The summary
    goes to stderr (stdout is left to a stdout notification channel).

    \b
    Examples:
      ledger consume notify --once --config notify.toml
      ledger consume retrain --follow --poll-interval 5
      ledger consume notify --follow --group alerts --config notify.toml   # ×N processes
    """
    from ledger import config
    from consumers import runner

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    # kafka-python logs every failed connection attempt; the runner and the CLI say
    # that the broker is unreachable in one line of their own. Its detail is for -v.
    logging.getLogger("kafka").setLevel(logging.WARNING if verbose else logging.CRITICAL)
    if config_path is not None and not config_path.is_file():
        raise click.BadParameter(f"no such file: {config_path}", param_hint="--config")
    if group is not None and mode != "follow":
        raise InputError("--group shares the partitions among processes that follow the log: add --follow")
    if group is not None and from_beginning:
        raise InputError("--from-beginning re-reads the whole log in one process: drop --group")
    options = runner.ConsumerOptions(
        log_url=settings(ctx)["log_url"], db_url=settings(ctx)["db_url"], config_path=config_path
    )
    consumer = runner.build(name, options)
    event_log = config.open_log(options.log_url)
    stop = threading.Event()
    try:
        worker = runner.Runner(consumer, event_log, options.db_url, batch_size=batch_size, stop=stop)
        with _stop_on_signals(stop):
            if mode == "follow" and group is not None:
                from ledger.groups import require_kafka, sharing

                require_kafka(event_log)
                with sharing(event_log, f"ledger-consume.{event_log.topic}.{name}.{group}") as assignment:
                    report = worker.follow(poll_interval=poll_interval, group=assignment)
            elif mode == "follow":
                report = worker.follow(poll_interval=poll_interval, from_beginning=from_beginning)
            else:
                report = worker.run_once(max_wait=max_wait, from_beginning=from_beginning)
    finally:
        consumer.close()
        event_log.close()
    click.echo(report.summary(name), err=True)


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, tz=timezone.utc).isoformat(timespec="seconds")


_DELIVERY_COLUMNS = (
    "delivery", "event_type", "model", "version", "channel", "status",
    "attempts", "next_attempt_at", "last_error", "outcome", "updated_at",
)
_LETTER_COLUMNS = ("kind", "partition", "offset", "event_id", "channel", "delivery", "reason", "recorded_at")


@click.command()
@click.option(
    "--status",
    type=click.Choice(["pending", "sending", "delivered", "retrying", "dead"]),
    default=None,
    help="Only deliveries in this state.",
)
@click.option("--model", type=MODEL, default=None, help="Only deliveries about this model.")
@click.option(
    "--consumer",
    default="notify",
    show_default=True,
    help="Whose effects to list: notify, or retrain for the retraining jobs and why any failed.",
)
@click.option(
    "--dead-letters",
    is_flag=True,
    help="List the dead-letter table instead: failed deliveries and undecodable records, with the reason.",
)
@output_options
@click.pass_context
def notifications(ctx, status, model, consumer, dead_letters, fmt, as_json, as_csv):
    """List notification deliveries (one per event and channel) and failures.

    \b
    Examples:
      ledger notifications
      ledger notifications --status dead --json
      ledger notifications --dead-letters
      ledger notifications --consumer retrain --dead-letters
    """
    from consumers import runner
    from consumers.store import Store, engine_for

    fmt = chosen_format(fmt, as_json, as_csv)
    if consumer not in runner.REGISTRY:  # a typo must not look like an empty list
        raise InputError(f"unknown consumer {consumer!r}; known: {', '.join(runner.names())}")
    store = Store(engine_for(settings(ctx)["db_url"]), consumer)
    if dead_letters:
        rows = [
            {
                **row,
                "delivery": row["effect_id"],
                "recorded_at": _iso(row["recorded_at"]),
                "data": row["data"].hex() if row["data"] is not None else None,
            }
            for row in store.list_dead_letters()
        ]
        click.echo(render(rows, _LETTER_COLUMNS, fmt))
        return
    rows = [
        {
            **row,
            "delivery": row["id"],
            "payload": json.loads(row["payload"]),
            "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] in ("pending", "retrying") else None,
            **{name: _iso(row[name]) for name in ("created_at", "updated_at", "claimed_at", "finished_at")},
        }
        for row in store.list_effects(status, model)
    ]
    click.echo(render(rows, _DELIVERY_COLUMNS, fmt))


commands: list = [consume, notifications]
