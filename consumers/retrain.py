"""The retraining consumer: a drift alert that crossed its threshold becomes one
new model version, trained, evaluated and recorded — never approved or deployed.

On the shared runner (:mod:`consumers.runner`):

* **policy** (pure): a ``DriftDetected`` whose value reaches its threshold asks for
  one ``train`` effect. The runner records it with the log position in one database
  transaction, under ``UNIQUE(consumer, event_id, channel)``: the alert's event id
  is the job's key, so a redelivered or replayed alert adds no second job;
* **perform** (the job) runs after the runner has finished reading and closed its
  reader, never inside a poll loop — so a training that takes minutes cannot
  exceed a Kafka consumer's ``max_poll_interval_ms`` (positions are the database's,
  no Kafka group membership is held while training).

The job, for alert *A* on version *v* of model *m*:

1. look in *m*'s stream for the two events this job would write, whose ids are
   fixed by the alert: ``uuid5(A, "trained")`` and ``uuid5(A, "evaluated")``. Both
   there → the job is done (a crash after recording): nothing is trained again;
2. pick the data: the newest snapshot of the reference snapshot's dataset recorded
   in the stream *before the alert* (normally the alert's own current snapshot),
   so a re-run after a crash picks the same data whatever came later;
3. fit the standard pipeline (:mod:`consumers.training`, seeded: a re-run after a
   crash between training and recording gives the same model), write the
   artifact, and append ``ModelTrained`` + ``ModelEvaluated`` atomically through
   the ledger's append path (rules and hash chain apply) as the next free version,
   ``parent_version`` *v*, ``trigger="drift"``, ``trigger_alert_id`` = causation id
   = *A*, correlation id = the alert's (or *A*).

Exactly one version per alert, whatever crashes: the log itself refuses a second
event with a used event id in a stream, and step 1 recognises the first. Two
processes that both run the job (a lease ran out under a slow training) may both
train, but only one records; the other finds the events and stops.

Degradation alerts (``PerformanceDegraded``, from ``ledger feedback record``) are
treated the same way: one training per alert, on the newest snapshot of the
dataset the degraded version was trained on, recorded with
``trigger="degradation"``. With ``include_feedback = true`` the labelled feedback
rows (the alert's feedback snapshot) are added to that data, registered as a new
snapshot of the same dataset (its id derived from its content, so a re-run finds
it), and the new version is trained on it.

Configuration (``--config FILE.toml``, table ``[retrain]``; environment variables
win): ``include_feedback`` / ``LEDGER_RETRAIN_INCLUDE_FEEDBACK`` (default false),
``actor`` / ``LEDGER_RETRAIN_ACTOR`` (default ``retrainer``),
``lease_seconds`` / ``LEDGER_RETRAIN_LEASE_SECONDS`` (default 1800: how long a
started job may run before another process presumes it dead and runs it again),
``artifacts_dir`` / ``LEDGER_ARTIFACTS_DIR``, ``thresholds`` (a table metric →
minimum, default ``roc_auc = 0.7``). With ``LEDGER_URL`` (and ``LEDGER_TOKEN``, a
principal named like the actor, roles snapshot, train and evaluate) the retraining
is recorded through the ledger service; the log is still read directly.

Fault point ``retrain-after-artifact`` (:mod:`ledger.faults`, tests only): right
after the artifact is written and before anything is recorded — the worst moment
for a crash, where the tests SIGKILL the process to prove exactly once.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from ledger import faults, rules
from ledger.data import datasets
from ledger.data.feedback import with_outcomes
from ledger.data.monitoring import _prepare_snapshot
from ledger.errors import BackendError, ConflictError, InputError, LedgerError, NotFound, RuleViolation
from ledger.events import DataSnapshotted, DriftDetected, Event, ModelEvaluated, ModelTrained, PerformanceDegraded
from ledger.files import read_toml

from consumers import training
from consumers.runner import Consumer, ConsumerOptions, Effect, EffectFailed, Intent, RetryPolicy

CHANNEL = "train"


def retraining_ids(alert_id: str | uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """The event ids of the ``ModelTrained`` and ``ModelEvaluated`` an alert causes."""
    alert = uuid.UUID(str(alert_id))
    return uuid.uuid5(alert, "trained"), uuid.uuid5(alert, "evaluated")


def policy(event: Event) -> list[Intent]:
    """One training per drift or degradation alert that crossed its threshold; nothing else."""
    if isinstance(event, PerformanceDegraded) and event.crossed:
        return [
            Intent(
                CHANNEL,
                {
                    "kind": "degradation",
                    "model": event.model,
                    "version": event.version,
                    "environment": event.environment,
                    "metric": event.metric,
                    "value": event.value,
                    "threshold": event.threshold,
                    "feedback_event_id": event.feedback_event_id,
                    "feedback_snapshot_id": event.snapshot_id,
                    "correlation_id": event.correlation_id,
                },
            )
        ]
    if not isinstance(event, DriftDetected) or not event.crossed:
        return []
    return [
        Intent(
            CHANNEL,
            {
                "model": event.model,
                "version": event.version,
                "environment": event.environment,
                "metric": event.metric,
                "feature": event.feature,
                "value": event.value,
                "threshold": event.threshold,
                "reference_snapshot_id": event.reference_snapshot_id,
                "current_snapshot_id": event.current_snapshot_id,
                "correlation_id": event.correlation_id,
            },
        )
    ]


def choose_snapshot(stream: Sequence[Event], alert_id: str, reference_snapshot_id: str) -> DataSnapshotted:
    """The newest snapshot of the reference snapshot's dataset recorded before the alert."""
    snapshots: dict[str, DataSnapshotted] = {}
    newest_by_dataset: dict[str, DataSnapshotted] = {}
    for event in stream:
        if str(event.event_id) == alert_id:
            break
        if isinstance(event, DataSnapshotted):
            snapshots[event.snapshot_id] = event
            newest_by_dataset[event.dataset] = event
    else:
        raise NotFound(f"drift alert {alert_id} is not in its model's stream")
    reference = snapshots.get(reference_snapshot_id)
    if reference is None:
        raise NotFound(f"the alert's reference snapshot {reference_snapshot_id!r} is not in the stream")
    return newest_by_dataset[reference.dataset]


def training_snapshot_of(stream: Sequence[Event], version: int) -> str:
    """The snapshot ``version`` was trained on (the first of its ``snapshot_ids``)."""
    trained = next((e for e in stream if isinstance(e, ModelTrained) and e.version == version), None)
    if trained is None:
        raise NotFound(f"version {version} has no ModelTrained in its stream")
    return trained.snapshot_ids[0]


@dataclass(frozen=True)
class Settings:
    actor: str = "retrainer"
    lease_seconds: float = 1800.0
    artifacts_dir: Path | None = None
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(training.DEFAULT_THRESHOLDS))
    include_feedback: bool = False

    @classmethod
    def load(cls, config_path: Path | None, env: Mapping[str, str]) -> Settings:
        # Every mistake is found here, before any job runs: a setting found wrong
        # only after a training would dead-letter that alert's retraining for good.
        table: dict = {}
        if config_path is not None:
            table = read_toml(config_path, "the retrain configuration").get("retrain", {})
            if not isinstance(table, dict):
                raise InputError(f"{config_path}: [retrain] must be a table")
            unknown = sorted(set(table) - _KEYS)
            if unknown:
                raise InputError(
                    f"{config_path}: unknown setting(s) {', '.join(unknown)} in [retrain]; "
                    f"known: {', '.join(sorted(_KEYS))}"
                )
        actor = env.get("LEDGER_RETRAIN_ACTOR") or table.get("actor", cls.actor)
        if not isinstance(actor, str) or not actor.strip():
            raise InputError(f"the retrain actor must be a non-empty name, not {actor!r}")
        lease = env.get("LEDGER_RETRAIN_LEASE_SECONDS") or table.get("lease_seconds", cls.lease_seconds)
        artifacts = env.get("LEDGER_ARTIFACTS_DIR") or table.get("artifacts_dir")
        if artifacts is not None and not isinstance(artifacts, str):
            raise InputError(f"artifacts_dir must be a path, not {artifacts!r}")
        thresholds = table.get("thresholds", training.DEFAULT_THRESHOLDS)
        if not isinstance(thresholds, dict):
            raise InputError(f"thresholds must be a table of metric = minimum, e.g. {{ roc_auc = 0.7 }}, not {thresholds!r}")
        minimums = training.check_thresholds(thresholds)
        include = env.get("LEDGER_RETRAIN_INCLUDE_FEEDBACK")
        if include is not None:
            if include.strip().lower() not in ("true", "false", "1", "0"):
                raise InputError(f"LEDGER_RETRAIN_INCLUDE_FEEDBACK must be true or false, not {include!r}")
            include = include.strip().lower() in ("true", "1")
        else:
            include = table.get("include_feedback", False)
        if not isinstance(include, bool):
            raise InputError(f"include_feedback must be true or false, not {include!r}")
        try:
            lease = float(lease)
        except (TypeError, ValueError):
            raise InputError(f"lease_seconds must be a number of seconds, not {lease!r}") from None
        if not (math.isfinite(lease) and lease > 0):
            raise InputError(f"lease_seconds must be a positive number of seconds, not {lease!r}")
        return cls(actor, lease, Path(artifacts) if artifacts else None, minimums, include)


_KEYS = frozenset(field.name for field in fields(Settings))


class _ReadHereRecordThere:
    """A ledger that reads the log directly and records through the service."""

    def __init__(self, reader, recorder):
        self.reader, self.recorder = reader, recorder

    def events(self, model=None):
        return self.reader.events(model)

    def state(self, model):
        return self.reader.state(model)

    def emit(self, event, **options):
        return self.recorder.emit(event, **options)

    def emit_many(self, events, **options):
        return self.recorder.emit_many(events, **options)

    def close(self) -> None:
        self.recorder.close()
        self.reader.close()


class Retrainer(Consumer):
    name = "retrain"
    retry = RetryPolicy(max_attempts=3, base_delay=5.0, max_delay=300.0)

    def __init__(self, log_url: str, settings: Settings | None = None, env: Mapping[str, str] | None = None):
        self.log_url = log_url
        self.settings = settings or Settings()
        self.lease_seconds = self.settings.lease_seconds
        self.env = os.environ if env is None else env
        self._ledger = None

    @property
    def ledger(self):
        if self._ledger is None:
            from ledger.client import Ledger

            self._ledger = Ledger.open(self.log_url)
            if self.env.get("LEDGER_URL"):
                # Reads from the log, records through the ledger service: where the
                # broker lets only the service write (scripts/kafka.sh acls,
                # compose.yaml), and so that the service stays the partitions' one
                # writer instead of being fenced by this process.
                from ledger.http_client import HttpLedger

                self._ledger = _ReadHereRecordThere(self._ledger, HttpLedger(self.env["LEDGER_URL"], self.env.get("LEDGER_TOKEN")))
        return self._ledger

    def policy(self, event: Event) -> list[Intent]:
        return policy(event)

    def perform(self, effect: Effect) -> str:
        try:
            return self.retrain(effect.event_id, effect.payload)
        except ConflictError as exc:
            raise EffectFailed(str(exc)) from exc  # lost a write race: try again later
        except (InputError, NotFound, RuleViolation) as exc:
            # The data, the configuration or the rules refuse this retraining: trying
            # again cannot help; the dead letter names why.
            raise EffectFailed(str(exc), permanent=True) from exc
        except BackendError:
            raise  # the log or database is away: retried with backoff
        except LedgerError as exc:
            raise EffectFailed(str(exc)) from exc

    def retrain(self, alert_id: str, alert: Mapping) -> str:
        model = alert["model"]
        trained_id, evaluated_id = retraining_ids(alert_id)
        stream = list(self.ledger.events(model))
        done = self._recorded(stream, trained_id, evaluated_id)
        if done is not None:
            return done
        degradation = alert.get("kind") == "degradation"
        reference_id = alert["reference_snapshot_id"] if not degradation else training_snapshot_of(stream, alert["version"])
        snapshot = choose_snapshot(stream, alert_id, reference_id)
        data = datasets.load_snapshot(snapshot)
        if degradation and self.settings.include_feedback and alert.get("feedback_snapshot_id"):
            snapshot, data = self._with_feedback(stream, snapshot, data, alert["feedback_snapshot_id"])
        fitted = training.fit(data)
        try:
            result = training.record(
                self.ledger,
                fitted,
                model=model,
                actor=self.settings.actor,
                snapshot_id=snapshot.snapshot_id,
                thresholds=self.settings.thresholds,
                parent_version=alert["version"],
                trigger="degradation" if degradation else "drift",
                trigger_alert_id=alert_id,
                causation_id=alert_id,
                correlation_id=alert.get("correlation_id") or alert_id,
                trained_event_id=trained_id,
                evaluated_event_id=evaluated_id,
                artifacts_dir=self.settings.artifacts_dir,
                after_artifact=lambda uri: faults.reached("retrain-after-artifact"),
            )
        except RuleViolation:
            # Another process of this consumer may have recorded this very job while
            # we trained (its lease ran out under us): then the job is done.
            done = self._recorded(list(self.ledger.events(model)), trained_id, evaluated_id)
            if done is not None:
                return done
            raise
        if result.trained.duplicate:
            # Another process recorded this very job, identically, while we trained:
            # the log answered our append as a retry of theirs and wrote nothing.
            return f"already recorded as {model} v{result.version}"
        verdict = "passed" if result.evaluated.event.passed else "failed"
        return f"trained {model} v{result.version} on {snapshot.snapshot_id}; evaluation {verdict}"

    def _with_feedback(self, stream, snapshot: DataSnapshotted, data, feedback_snapshot_id: str):
        """The training data plus the labelled feedback, registered as a snapshot of
        the training dataset (the same content gives the same id: a re-run finds it)."""
        feedback = next(
            (e for e in stream if isinstance(e, DataSnapshotted) and e.snapshot_id == feedback_snapshot_id), None
        )
        if feedback is None:
            raise NotFound(f"the alert's feedback snapshot {feedback_snapshot_id!r} is not in the stream")
        combined = with_outcomes(data, datasets.load_snapshot(feedback))
        for attempt in range(2):
            draft, new = _prepare_snapshot(
                stream, combined, model=snapshot.model, dataset=snapshot.dataset, actor=self.settings.actor,
                snapshot_id=None, store=datasets.DataStore(),
            )
            if not new:
                return draft, combined
            try:
                return self.ledger.emit(draft).event, combined
            except RuleViolation as exc:
                if attempt or exc.rule != rules.SNAPSHOT_UNIQUE:
                    raise
                stream = list(self.ledger.events(snapshot.model))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _recorded(stream: Sequence[Event], trained_id: uuid.UUID, evaluated_id: uuid.UUID) -> str | None:
        trained = next((e for e in stream if e.event_id == trained_id and isinstance(e, ModelTrained)), None)
        if trained is None:
            return None
        if not any(e.event_id == evaluated_id and isinstance(e, ModelEvaluated) for e in stream):
            # This job appends both in one atomic append; a lone ModelTrained means
            # someone else wrote under our id. Refuse rather than guess.
            raise RuleViolation(
                "event-id-unique", f"{trained.model} v{trained.version} holds the retraining's ModelTrained alone"
            )
        return f"already recorded as {trained.model} v{trained.version}"

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def build(options: ConsumerOptions) -> Retrainer:
    return Retrainer(options.log_url, Settings.load(options.config_path, options.env), options.env)
