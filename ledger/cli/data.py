"""``ledger data snapshot``, ``ledger drift check`` and ``ledger train``.

Thin: each command calls :mod:`ledger.data.monitoring` or :mod:`consumers.training` and
prints the result; errors are the ledger's family, mapped to exit codes by the
``ledger`` group. Heavy imports (numpy, scikit-learn) happen inside the commands.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ledger import parsing
from ledger.cli.base import EXIT_DRIFT, MODEL, open_ledger, validation_message
from ledger.cli.output import chosen_format, output_options, render
from ledger.errors import InputError


def _store(data_dir: Path | None):
    from ledger.data.datasets import DataStore

    return DataStore(data_dir)


def _read_contract(path: Path):
    from pydantic import ValidationError

    from ledger.events import DataContract

    try:
        return DataContract.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the data contract {str(path)!r}: {exc}") from exc
    except ValidationError as exc:
        raise InputError(f"invalid data contract {str(path)!r}: {validation_message(exc, 'contract')}") from exc


_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LEDGER_DATA_DIR",
    default=None,
    help="Where checked data files are kept for retraining (default ./.ledger/data).",
)


@click.group()
def data() -> None:
    """Register datasets (CSV files checked against a data contract).

    \b
    Example:
      ledger data snapshot churn --dataset churn-data --contract contract.json \\
        --data train.csv --actor alice
    """


@data.command("snapshot")
@click.argument("model", type=MODEL)
@click.option("--dataset", required=True, help="Dataset name (drift and retraining follow it).")
@click.option(
    "--contract",
    "contract_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The data contract as JSON: {columns: [{name, dtype, unit, missing, minimum, maximum}], sampling, target}.",
)
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The CSV file.")
@click.option("--actor", required=True, help="Who registers the data.")
@click.option("--snapshot-id", default=None, help="Default: DATASET-<first 12 hex digits of the content hash>.")
@_data_dir_option
@output_options
@click.pass_context
def snapshot(ctx, model, dataset, contract_path, data_path, actor, snapshot_id, data_dir, fmt, as_json, as_csv):
    """Check a CSV file against a data contract, keep a copy, record DataSnapshotted.

    Header cells may carry units, NAME[UNIT]; values are converted to the
    contract's units. Registering the same data again reuses its snapshot.

    \b
    Example:
      ledger data snapshot churn --dataset churn-data --contract contract.json \\
        --data train.csv --actor alice
    """
    from ledger.data import monitoring

    out = chosen_format(fmt, as_json, as_csv)
    result = monitoring.register_snapshot(
        open_ledger(ctx),
        model,
        dataset=dataset,
        contract=_read_contract(contract_path),
        path=data_path,
        actor=actor,
        snapshot_id=snapshot_id,
        store=_store(data_dir),
    )
    s = result.snapshot
    row = {
        "snapshot_id": s.snapshot_id,
        "dataset": s.dataset,
        "rows": s.row_count,
        "content_hash": s.content_hash,
        "uri": s.uri,
        "sequence": s.sequence,
        "new": result.created,
    }
    click.echo(render([row], list(row), out))


@click.group()
def drift() -> None:
    """Drift between the data a version was trained on and new data.

    \b
    Example:
      ledger drift check churn@3 --data last-week.csv
    """


@drift.command("check")
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="New data, CSV.")
@click.option("--environment", default="production", show_default=True, help="Where the version serves this data.")
@click.option("--metric", type=click.Choice(["psi", "ks"]), default="psi", show_default=True, help="Which score decides.")
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Alert level for the chosen metric (default: PSI 0.2, KS 0.1).",
)
@click.option("--actor", default="monitor", show_default=True, help="Who reports the drift.")
@_data_dir_option
@output_options
@click.pass_context
def check(ctx, target, data_path, environment, metric, threshold, actor, data_dir, fmt, as_json, as_csv):
    """Compare new data with the snapshot MODEL@VERSION was trained on.

    Per numeric feature: the population stability index over the reference's
    deciles, and the Kolmogorov-Smirnov statistic against the reference's
    quantiles. The data is checked against the reference's data contract and
    registered as a snapshot of the same dataset. When the worst feature's score
    for --metric reaches the threshold, DriftDetected is recorded (once: checking
    the same data again finds the same alert).

    Exit status 0: no drift; 5: drift detected and recorded; other codes as for
    every ledger command (1 rejected by a rule, 2 bad input, 3 unavailable,
    4 unknown model or version). The per-feature table goes to stdout, the
    verdict to stderr.

    \b
    Example:
      ledger drift check churn@3 --data last-week.csv --environment production
    """
    from ledger.data import drift as drift_math
    from ledger.data import monitoring

    out = chosen_format(fmt, as_json, as_csv)
    model, version = parsing.parse_model_version(target)
    parsing.parse_environment(environment)
    thresholds = drift_math.Thresholds()
    if threshold is not None:
        thresholds = dataclasses.replace(thresholds, **{metric: threshold})
    result = monitoring.check_drift(
        open_ledger(ctx),
        model,
        version,
        data_path,
        environment=environment,
        metric=metric,
        thresholds=thresholds,
        actor=actor,
        store=_store(data_dir),
    )
    report = result.report
    rows = []
    for score in report.scores:
        flags = [m for m, on in report.drifted(score).items() if on]
        rows.append(
            {
                "feature": score.feature,
                "psi": round(score.psi, 4),
                "ks": round(score.ks, 4),
                "drift": ",".join(flags),
                "reference_mean": None if score.reference_mean is None else round(score.reference_mean, 4),
                "current_mean": round(score.current_mean, 4),
                "count": score.count,
                "missing": score.missing,
            }
        )
    click.echo(render(rows, list(rows[0]), out))
    worst = report.worst
    snap = f"snapshot {result.snapshot.snapshot_id} ({'registered' if result.snapshot_created else 'already registered'})"
    if report.skipped:
        click.echo(f"not scored (no values): {', '.join(report.skipped)}", err=True)
    if not result.crossed:
        click.echo(
            f"no drift: worst {metric} {worst.value(metric):.4f} on {worst.feature!r} "
            f"< threshold {report.threshold:g}; {snap}",
            err=True,
        )
        return
    alert = result.alert
    how = "recorded" if result.alert_created else "already recorded"
    click.echo(
        f"DRIFT DETECTED: {metric} {worst.value(metric):.4f} on {worst.feature!r} >= threshold "
        f"{report.threshold:g}; DriftDetected {alert.event_id} {how} at sequence {alert.sequence}; {snap}",
        err=True,
    )
    ctx.exit(EXIT_DRIFT)


@click.command()
@click.argument("model", type=MODEL)
@click.option("--snapshot", "snapshot_id", required=True, help="The registered snapshot to train on.")
@click.option("--actor", required=True, help="Who trains (cannot later approve this version).")
@click.option("--evaluation-snapshot", default=None, help="Evaluate on this snapshot (default: a 25% holdout).")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="METRIC=MIN",
    help="Evaluation policy, repeatable (default roc_auc=0.7). Metrics: accuracy, f1, roc_auc.",
)
@click.option(
    "--artifacts-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LEDGER_ARTIFACTS_DIR",
    default=None,
    help="Where model files go (default ./.ledger/artifacts).",
)
@output_options
@click.pass_context
def train(ctx, model, snapshot_id, actor, evaluation_snapshot, thresholds, artifacts_dir, fmt, as_json, as_csv):
    """Train the standard scikit-learn pipeline on a snapshot; record the new
    version (ModelTrained) and its evaluation (ModelEvaluated).

    \b
    Example:
      ledger train churn --snapshot churn-data-3f2a9c0d1e2b --actor alice
    """
    from consumers import training

    out = chosen_format(fmt, as_json, as_csv)
    policy = None
    if thresholds:
        policy = {}
        for item in thresholds:
            name, sep, value = item.partition("=")
            try:
                policy[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                raise InputError(f"--threshold takes METRIC=MIN (e.g. roc_auc=0.7), not {item!r}")
    result = training.train_and_record(
        open_ledger(ctx),
        model,
        snapshot_id,
        actor,
        evaluation_snapshot_id=evaluation_snapshot,
        thresholds=policy,
        artifacts_dir=artifacts_dir,
    )
    trained, evaluated = result.trained.event, result.evaluated.event
    row = {
        "model": model,
        "version": trained.version,
        "snapshot_id": snapshot_id,
        **{k: round(v, 4) for k, v in evaluated.metrics.items()},
        "passed": evaluated.passed,
        "artifact_uri": trained.artifact_uri,
        "sequence": evaluated.sequence,
    }
    click.echo(render([row], list(row), out))
    if not evaluated.passed:
        click.echo(f"evaluation did not pass the policy {json.dumps(evaluated.thresholds)}", err=True)


commands: list = [data, drift, train]
