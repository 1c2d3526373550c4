"""``ledger feedback record``: field outcomes of a deployed version, and the
degradation alert when a metric falls past its threshold.

Thin: it parses what was typed and calls :mod:`ledger.data.field`; errors are the
ledger's family, mapped to exit codes by the ``ledger`` group.
"""

from __future__ import annotations

from pathlib import Path

import click

from ledger import parsing
from ledger.cli.base import EXIT_DEGRADED, open_ledger
from ledger.cli.output import chosen_format, output_options, render
from ledger.errors import InputError

_file = click.Path(dir_okay=False, path_type=Path)


def _instant(option: str, text: str | None):
    if text is None:
        return None
    try:
        return parsing.parse_instant(text)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None


@click.group()
def feedback() -> None:
    """Outcomes observed in the field (which alarms were real), per deployed version.

    \b
    Example:
      ledger feedback record pump@2 --data april-outcomes.csv --environment production \\
        --actor technicians --policy field-policy.toml
    """


@feedback.command("record")
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--data", "data_path", type=_file, default=None, help="One CSV holding predictions and their outcomes.")
@click.option("--predictions", "predictions_path", type=_file, default=None, help="Predictions CSV (with --outcomes).")
@click.option("--outcomes", "outcomes_path", type=_file, default=None, help="Outcomes CSV, joined to --predictions on the key.")
@click.option("--environment", required=True, help="Where the version served these predictions.")
@click.option("--actor", required=True, help="Who reports the outcomes (a technician, a labelling job).")
@click.option(
    "--contract",
    "contract_path",
    type=_file,
    default=None,
    help="Feedback contract JSON: {columns, key, prediction, outcome, score, timestamp, positive} "
    "(default: prediction_id, predicted_at, prediction, outcome).",
)
@click.option(
    "--policy",
    "policy_path",
    type=_file,
    default=None,
    help="TOML with a [feedback] table: minimums = {precision = 0.6}, maximums = {false_alarm_rate = 0.2}.",
)
@click.option("--dataset", default="field-feedback", show_default=True, help="Dataset name of the feedback snapshot.")
@click.option("--window-start", default=None, help="Start of the predictions' window (ISO-8601; a bare date is midnight UTC at the start of that day; default: earliest timestamp).")
@click.option("--window-end", default=None, help="End of the predictions' window (ISO-8601; a bare date is midnight UTC at the start of that day; default: latest timestamp).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LEDGER_DATA_DIR",
    default=None,
    help="Where checked data files are kept (default ./.ledger/data).",
)
@output_options
@click.pass_context
def record(
    ctx, target, data_path, predictions_path, outcomes_path, environment, actor, contract_path, policy_path,
    dataset, window_start, window_end, data_dir, fmt, as_json, as_csv,
):
    """Join predictions with their outcomes, measure the version in the field,
    record FeedbackRecorded — and PerformanceDegraded when a metric is past the
    threshold the version was approved against (its latest evaluation's
    minimums) or a stricter --policy bound.

    Rows with no outcome yet count as unlabelled and stay out of the metrics.
    The data is registered as a snapshot; recording the same data again finds
    the same feedback and alert. One alert per feedback: the worst metric.

    Exit status 0: recorded, no threshold crossed; 6: degradation recorded (or
    already recorded); other codes as for every ledger command (1 rejected by a
    rule, e.g. the version is not deployed there; 2 bad input; 3 unavailable;
    4 unknown model or version). The metrics table goes to stdout, the verdict
    to stderr.

    \b
    Example:
      ledger feedback record pump@2 --data april.csv --environment production --actor technicians
    """
    from ledger.data import datasets, field

    out = chosen_format(fmt, as_json, as_csv)
    model, version = parsing.parse_model_version(target)
    parsing.parse_environment(environment)
    start = _instant("--window-start", window_start)
    end = _instant("--window-end", window_end)
    result = field.record_feedback(
        open_ledger(ctx),
        model,
        version,
        environment=environment,
        actor=actor,
        contract=field.read_contract(contract_path),
        policy=field.read_policy(policy_path),
        data=data_path,
        predictions=predictions_path,
        outcomes=outcomes_path,
        dataset=dataset,
        window_start=start,
        window_end=end,
        store=datasets.DataStore(data_dir),
    )
    evaluation = result.evaluation.metrics if result.evaluation else {}
    held = {c.metric: c for c in result.verdict.held_to}
    crossed = {c.metric: c for c, _ in result.verdict.crossed}
    rows = []
    for metric, value in sorted(result.measure.metrics.items()):
        check = crossed.get(metric) or held.get(metric)
        rows.append(
            {
                "metric": metric,
                "field": round(value, 4),
                "offline": round(evaluation[metric], 4) if metric in evaluation else None,
                "threshold": f"{'≥' if check.bound == 'minimum' else '≤'} {check.threshold:g} ({check.source})" if check else None,
                "crossed": metric in crossed,
            }
        )
    click.echo(render(rows, ["metric", "field", "offline", "threshold", "crossed"], out))
    m, fb = result.measure, result.feedback
    how = "recorded" if result.feedback_created else "already recorded"
    click.echo(
        f"{m.predictions} labelled predictions ({m.unlabelled} unlabelled), {m.alarms} alarms, {m.confirmed} confirmed; "
        f"FeedbackRecorded {fb.event_id} {how} at sequence {fb.sequence}; snapshot {result.snapshot.snapshot_id}",
        err=True,
    )
    for check in result.verdict.unmeasured:
        click.echo(f"not measured in the field: {check.metric} (threshold {check.threshold:g}, {check.source})", err=True)
    if result.alert is None:
        click.echo("no degradation: every measured metric is within its threshold", err=True)
        return
    alert = result.alert
    how = "recorded" if result.alert_created else "already recorded"
    sign = "<" if alert.bound == "minimum" else ">"
    click.echo(
        f"DEGRADATION: {alert.metric} {alert.value:.4f} {sign} threshold {alert.threshold:g} ({alert.threshold_source}); "
        f"PerformanceDegraded {alert.event_id} {how} at sequence {alert.sequence}",
        err=True,
    )
    ctx.exit(EXIT_DEGRADED)


commands: list = [feedback]
