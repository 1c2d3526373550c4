"""``ledger consume openlineage``: lifecycle events out as OpenLineage 2-0-x events,
sent through the openlineage-python client's transports (HTTP, Kafka, file,
console), effectively once through the shared consumer runner.

The mapping (``docs/openlineage.md`` has it as a table):

- ``DataSnapshotted`` → a DatasetEvent: dataset ``MODEL/SNAPSHOT_ID`` with the
  ``version`` facet (the content hash), the ``schema`` facet (the data contract's
  columns, types and units) and a ``symlinks`` facet naming the logical dataset;
- ``ModelTrained`` → a COMPLETE RunEvent of job ``MODEL.train``: inputs the
  snapshots, output the model-typed dataset ``MODEL`` (``datasetType`` MODEL,
  ``version`` the version number); a retraining carries the ``parent`` facet (the
  parent version's training run) and, in ``ledgerTraining``, its drift alert's
  event id and run id;
- ``ModelEvaluated`` → a COMPLETE RunEvent of job ``MODEL.evaluate``: inputs the
  model version and the evaluation snapshot, parent the version's training run,
  metrics and thresholds in ``ledgerEvaluation``;
- ``DriftDetected`` → a COMPLETE RunEvent of job ``MODEL.drift_check``: inputs the
  deployed version and the snapshots compared, ``ledgerDrift``;
- ``ModelApproved`` / ``ApprovalRejected`` / ``ModelDeployed`` / ``ModelRetired``
  → DatasetEvents on the model dataset with the custom facets ``ledgerApproval``,
  ``ledgerDeployment``, ``ledgerRetirement``.

Every event also carries ``ledgerEvent`` (id, type, actor, sequence, times). The
custom facets' JSON schema is published in
``schemas/openlineage/LedgerFacets-1-0-0.json`` (never edited; a change is a new
file); their ``_schemaURL`` points into it.

Run ids are deterministic, so a redelivered event is the same OpenLineage event:
a training run's id is a UUIDv5 of ``MODEL@VERSION`` (so a retraining can name
its parent's run from the parent version alone), other runs use the ledger
event's own UUID.

The policy stores the ledger event (its JSON) as the effect's payload; the mapping
runs again at send time, a pure function of that payload.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attr

from consumers.runner import Consumer, ConsumerOptions, Effect, EffectFailed, Intent, RetryPolicy
from ledger.errors import InputError
from ledger.files import read_toml
from ledger.events import (
    BY_TYPE,
    ApprovalRejected,
    DataSnapshotted,
    DriftDetected,
    Event,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
    ModelTrained,
)

NAME = "openlineage"
CHANNEL = "openlineage"

DEFAULT_NAMESPACE = "ledger"
DEFAULT_PRODUCER = "urn:model-lifecycle-ledger:consumers.openlineage"
FACETS_SCHEMA = "urn:model-lifecycle-ledger:openlineage:LedgerFacets-1-0-0.json"
"""The ``$id`` of schemas/openlineage/LedgerFacets-1-0-0.json. Where that file is
published at a URL, set ``facets_schema_url`` in the configuration to it."""

RUN_NAMESPACE = uuid.UUID("8f6d3b1e-5a0c-5e43-9b7d-2c1f0e6a4d21")
"""Namespace of the UUIDv5 training run ids. Never change it: run ids must stay
the same across releases."""


def training_run_id(model: str, version: int) -> str:
    return str(uuid.uuid5(RUN_NAMESPACE, f"train:{model}@{version}"))


# --- the custom facets ------------------------------------------------------------------------


def _facet_classes(schema_base: str):
    """The custom facet classes, their ``_schemaURL`` pointing into ``schema_base``."""
    from openlineage.client.generated.base import DatasetFacet, RunFacet

    def url(name: str) -> str:
        return f"{schema_base}#/$defs/{name}"

    def define(name: str, base, fields: dict[str, Any]):
        attributes = {k: attr.field(default=v, kw_only=True) for k, v in fields.items()}
        cls = attr.make_class(name, attributes, bases=(base,), kw_only=True)
        cls._get_schema = staticmethod(lambda: url(name))
        return cls

    event = {"eventId": None, "eventType": None, "model": None, "version": None, "actor": None,
             "sequence": None, "occurredAt": None, "recordedAt": None}
    return {
        "LedgerEventRunFacet": define("LedgerEventRunFacet", RunFacet, event),
        "LedgerEventDatasetFacet": define("LedgerEventDatasetFacet", DatasetFacet, event),
        "LedgerTrainingRunFacet": define(
            "LedgerTrainingRunFacet", RunFacet,
            {"codeRef": None, "hyperparameters": None, "artifactUri": None, "artifactHash": None, "snapshotIds": None,
             "trigger": None, "parentVersion": None, "parentRunId": None, "alertEventId": None, "alertRunId": None},
        ),
        "LedgerEvaluationRunFacet": define("LedgerEvaluationRunFacet", RunFacet, {"metrics": None, "thresholds": None, "passed": None}),
        "LedgerDriftRunFacet": define(
            "LedgerDriftRunFacet", RunFacet,
            {"environment": None, "metric": None, "feature": None, "value": None, "threshold": None, "crossed": None},
        ),
        "LedgerApprovalDatasetFacet": define("LedgerApprovalDatasetFacet", DatasetFacet, {"decision": None, "by": None, "reason": None, "version": None}),
        "LedgerDeploymentDatasetFacet": define(
            "LedgerDeploymentDatasetFacet", DatasetFacet, {"environment": None, "by": None, "version": None, "replacedVersion": None}
        ),
        "LedgerRetirementDatasetFacet": define("LedgerRetirementDatasetFacet", DatasetFacet, {"by": None, "reason": None, "version": None}),
    }


# --- the mapping (pure) --------------------------------------------------------------------


class Mapper:
    """Ledger event → OpenLineage event (typed, from openlineage-python). Pure."""

    COMPLETE: ClassVar[str] = "COMPLETE"

    def __init__(self, namespace: str = DEFAULT_NAMESPACE, producer: str = DEFAULT_PRODUCER, facets_schema_url: str = FACETS_SCHEMA):
        self.namespace = namespace
        self.producer = producer
        self.facets = _facet_classes(facets_schema_url)

    # -- names -----------------------------------------------------------------------

    def snapshot_dataset(self, model: str, snapshot_id: str) -> tuple[str, str]:
        return self.namespace, f"{model}/{snapshot_id}"

    def model_dataset(self, model: str) -> tuple[str, str]:
        return self.namespace, model

    def job(self, model: str, action: str):
        from openlineage.client.event_v2 import Job
        from openlineage.client.facet_v2 import job_type_job

        facet = job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="MODEL_LIFECYCLE_LEDGER", jobType=action.upper(), producer=self.producer
        )
        return Job(namespace=self.namespace, name=f"{model}.{action}", facets={"jobType": facet})

    # -- facets ------------------------------------------------------------------------

    def _ledger_event(self, event: Event, kind: str):
        cls = self.facets[f"LedgerEvent{kind}Facet"]
        return cls(
            producer=self.producer,
            eventId=str(event.event_id),
            eventType=event.event_type,
            model=event.model,
            version=event.version,
            actor=event.actor,
            sequence=event.sequence,
            occurredAt=event.occurred_at.isoformat(),
            recordedAt=event.recorded_at.isoformat() if event.recorded_at else None,
        )

    def _model_facets(self, version: int | None) -> dict:
        from openlineage.client.facet_v2 import dataset_type_dataset, dataset_version_dataset

        facets = {"datasetType": dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="MODEL", producer=self.producer)}
        if version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version), producer=self.producer)
        return facets

    def _model_input(self, model: str, version: int):
        from openlineage.client.event_v2 import InputDataset

        namespace, name = self.model_dataset(model)
        return InputDataset(namespace=namespace, name=name, facets=self._model_facets(version))

    def _snapshot_input(self, model: str, snapshot_id: str):
        from openlineage.client.event_v2 import InputDataset

        namespace, name = self.snapshot_dataset(model, snapshot_id)
        return InputDataset(namespace=namespace, name=name)

    def _parent(self, model: str, run_id: str, action: str):
        from openlineage.client.facet_v2 import parent_run

        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=self.namespace, name=f"{model}.{action}"),
            producer=self.producer,
        )

    def _run_event(self, event: Event, run_id: str, action: str, run_facets: dict, inputs=(), outputs=()):
        from openlineage.client.event_v2 import Run, RunEvent, RunState

        return RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=event.occurred_at.isoformat(),
            run=Run(runId=run_id, facets={"ledgerEvent": self._ledger_event(event, "Run"), **run_facets}),
            job=self.job(event.model, action),
            inputs=list(inputs),
            outputs=list(outputs),
            producer=self.producer,
        )

    def _model_event(self, event: Event, facets: dict):
        from openlineage.client.event_v2 import DatasetEvent, StaticDataset

        namespace, name = self.model_dataset(event.model)
        return DatasetEvent(
            eventTime=event.occurred_at.isoformat(),
            dataset=StaticDataset(
                namespace=namespace,
                name=name,
                facets={**self._model_facets(event.version), "ledgerEvent": self._ledger_event(event, "Dataset"), **facets},
            ),
            producer=self.producer,
        )

    # -- the events --------------------------------------------------------------------

    def map(self, event: Event):
        """The OpenLineage event for one ledger event."""
        handler = getattr(self, f"_map_{event.event_type}")
        return handler(event)

    def _map_DataSnapshotted(self, e: DataSnapshotted):  # noqa: N802
        from openlineage.client.event_v2 import DatasetEvent, StaticDataset
        from openlineage.client.facet_v2 import dataset_version_dataset, schema_dataset, symlinks_dataset

        fields = [
            schema_dataset.SchemaDatasetFacetFields(
                name=c.name,
                type=c.dtype,
                description="; ".join(
                    part for part in (
                        f"unit: {c.unit}" if c.unit else "",
                        f"missing: {c.missing}",
                        f"minimum: {c.minimum:g}" if c.minimum is not None else "",
                        f"maximum: {c.maximum:g}" if c.maximum is not None else "",
                        "target" if e.contract.target == c.name else "",
                    ) if part
                ),
            )
            for c in e.contract.columns
        ]
        namespace, name = self.snapshot_dataset(e.model, e.snapshot_id)
        facets = {
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=e.content_hash, producer=self.producer),
            "schema": schema_dataset.SchemaDatasetFacet(fields=fields, producer=self.producer),
            "symlinks": symlinks_dataset.SymlinksDatasetFacet(
                identifiers=[symlinks_dataset.Identifier(namespace=self.namespace, name=e.dataset, type="DATASET")],
                producer=self.producer,
            ),
            "ledgerEvent": self._ledger_event(e, "Dataset"),
        }
        return DatasetEvent(
            eventTime=e.occurred_at.isoformat(),
            dataset=StaticDataset(namespace=namespace, name=name, facets=facets),
            producer=self.producer,
        )

    def _map_ModelTrained(self, e: ModelTrained):  # noqa: N802
        from openlineage.client.event_v2 import OutputDataset

        parent_run = training_run_id(e.model, e.parent_version) if e.parent_version is not None else None
        alert_run = None
        if e.trigger_alert_id:
            try:
                alert_run = str(uuid.UUID(e.trigger_alert_id))
            except ValueError:
                alert_run = None  # not a ledger event id: named in alertEventId only
        training = self.facets["LedgerTrainingRunFacet"](
            producer=self.producer,
            codeRef=e.code_ref,
            hyperparameters=dict(e.hyperparameters),
            artifactUri=e.artifact_uri,
            artifactHash=e.artifact_hash,
            snapshotIds=list(e.snapshot_ids),
            trigger=e.trigger,
            parentVersion=e.parent_version,
            parentRunId=parent_run,
            alertEventId=e.trigger_alert_id,
            alertRunId=alert_run,
        )
        run_facets = {"ledgerTraining": training}
        if parent_run is not None:
            run_facets["parent"] = self._parent(e.model, parent_run, "train")
        namespace, name = self.model_dataset(e.model)
        output = OutputDataset(namespace=namespace, name=name, facets=self._model_facets(e.version))
        inputs = [self._snapshot_input(e.model, s) for s in dict.fromkeys(e.snapshot_ids)]
        return self._run_event(e, training_run_id(e.model, e.version), "train", run_facets, inputs, [output])

    def _map_ModelEvaluated(self, e: ModelEvaluated):  # noqa: N802
        evaluation = self.facets["LedgerEvaluationRunFacet"](
            producer=self.producer, metrics=dict(e.metrics), thresholds=dict(e.thresholds), passed=e.passed
        )
        run_facets = {"ledgerEvaluation": evaluation, "parent": self._parent(e.model, training_run_id(e.model, e.version), "train")}
        inputs = [self._model_input(e.model, e.version), self._snapshot_input(e.model, e.evaluation_snapshot_id)]
        return self._run_event(e, str(e.event_id), "evaluate", run_facets, inputs)

    def _map_DriftDetected(self, e: DriftDetected):  # noqa: N802
        drift = self.facets["LedgerDriftRunFacet"](
            producer=self.producer, environment=e.environment, metric=e.metric, feature=e.feature,
            value=e.value, threshold=e.threshold, crossed=e.crossed,
        )
        inputs = [self._model_input(e.model, e.version), self._snapshot_input(e.model, e.reference_snapshot_id)]
        if e.current_snapshot_id:
            inputs.append(self._snapshot_input(e.model, e.current_snapshot_id))
        return self._run_event(e, str(e.event_id), "drift_check", {"ledgerDrift": drift}, inputs)

    def _review(self, e: ModelApproved | ApprovalRejected, decision: str):
        facet = self.facets["LedgerApprovalDatasetFacet"](
            producer=self.producer, decision=decision, by=e.actor, reason=e.reason, version=e.version
        )
        return self._model_event(e, {"ledgerApproval": facet})

    def _map_ModelApproved(self, e: ModelApproved):  # noqa: N802
        return self._review(e, "approved")

    def _map_ApprovalRejected(self, e: ApprovalRejected):  # noqa: N802
        return self._review(e, "rejected")

    def _map_ModelDeployed(self, e: ModelDeployed):  # noqa: N802
        facet = self.facets["LedgerDeploymentDatasetFacet"](
            producer=self.producer, environment=e.environment, by=e.actor, version=e.version, replacedVersion=e.replaced_version
        )
        return self._model_event(e, {"ledgerDeployment": facet})

    def _map_ModelRetired(self, e: ModelRetired):  # noqa: N802
        facet = self.facets["LedgerRetirementDatasetFacet"](producer=self.producer, by=e.actor, reason=e.reason, version=e.version)
        return self._model_event(e, {"ledgerRetirement": facet})


def as_dict(ol_event) -> dict:
    """An OpenLineage event as the JSON the transports send."""
    from openlineage.client.serde import Serde

    return json.loads(Serde.to_json(ol_event))


# --- configuration -----------------------------------------------------------------------------

TRANSPORT_TYPES = ("http", "kafka", "file", "console")


def load_config(path: Path | None, env: Mapping[str, str]) -> dict:
    """``--config FILE`` (TOML; or ``LEDGER_OPENLINEAGE_CONFIG``)::

        namespace = "ledger"                 # optional
        producer = "urn:…"                   # optional
        facets_schema_url = "https://…/LedgerFacets-1-0-0.json"   # optional
        [transport]                          # openlineage-python's own transport settings
        type = "http"                        # http | kafka | file | console
        url = "http://marquez:5000"

    Without a file: the openlineage-python client's own configuration
    (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, ``openlineage.yml``…)."""
    path = path or (Path(env["LEDGER_OPENLINEAGE_CONFIG"]) if env.get("LEDGER_OPENLINEAGE_CONFIG") else None)
    if path is None:
        return {}
    data = read_toml(path, "OpenLineage configuration")
    unknown = sorted(set(data) - {"namespace", "producer", "facets_schema_url", "transport", "retry"})
    if unknown:
        raise InputError(f"OpenLineage configuration {path}: unknown key(s) {', '.join(unknown)}")
    transport = data.get("transport")
    if transport is not None:
        if not isinstance(transport, dict) or transport.get("type") not in TRANSPORT_TYPES:
            raise InputError(
                f"OpenLineage configuration {path}: [transport] needs type = one of {', '.join(TRANSPORT_TYPES)}"
            )
    for key in ("namespace", "producer", "facets_schema_url"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise InputError(f"OpenLineage configuration {path}: {key} must be a non-empty string")
    return data


def make_client(config: dict):
    """An openlineage-python client with the configured transport (or the client's
    own configuration when none is given)."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import get_default_factory

    transport = config.get("transport")
    if transport is not None and transport.get("type") == "console":
        _console_to_stdout()
    if transport is None:
        return OpenLineageClient()
    try:
        if transport.get("type") == "kafka":
            return OpenLineageClient(transport=_checked_kafka(dict(transport)))
        return OpenLineageClient(transport=get_default_factory().create(config=dict(transport)))
    except (KeyError, TypeError, ValueError, RuntimeError, ImportError) as exc:
        hint = " (the kafka transport needs the confluent-kafka package)" if transport.get("type") == "kafka" else ""
        raise InputError(f"bad OpenLineage transport configuration: {exc!r}{hint}") from exc


KAFKA_DELIVERY_TIMEOUT = 30.0


def _checked_kafka(settings: dict):
    """openlineage-python's Kafka transport, told to report a failed delivery.

    Its own ``emit`` hands the delivery result to a callback that only logs it, so an
    event the broker refused (an unknown topic, a timeout) would be recorded here as
    delivered and never sent again. This one waits for the broker's answer to each
    event and raises when it is a refusal or does not come, so the runner retries it
    (``test_kafka_transport_loses_nothing_while_the_topic_is_missing``)."""
    from openlineage.client.serde import Serde
    from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport

    class CheckedKafkaTransport(KafkaTransport):
        def emit(self, event) -> None:
            failures: list = []

            def delivered(err, msg) -> None:
                if err is not None:
                    failures.append(err)

            if self.producer is None:
                self._setup_producer(self.kafka_config.config)
            key = self.message_key or self._get_message_key(event)
            self.producer.produce(
                topic=self.topic, key=key, value=Serde.to_json(event).encode("utf-8"), on_delivery=delivered
            )
            left = self.producer.flush(timeout=KAFKA_DELIVERY_TIMEOUT)
            if failures:
                raise RuntimeError(f"Kafka refused the event: {failures[0]}")
            if left:
                raise RuntimeError(f"Kafka did not confirm the event within {KAFKA_DELIVERY_TIMEOUT:g}s")

    return CheckedKafkaTransport(KafkaConfig.from_dict(settings))


def _console_to_stdout() -> None:
    """The console transport logs each event at INFO on its own logger; ``ledger
    consume`` logs only warnings unless -v. Send that logger's lines to stdout, one
    JSON event a line, without the log prefix."""
    import logging
    import sys

    logger = logging.getLogger("openlineage.client.transport.console")
    if not any(getattr(h, "_ledger_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._ledger_console = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class OpenLineageConsumer(Consumer):
    name = NAME

    def __init__(self, config: dict, client=None):
        self.mapper = Mapper(
            config.get("namespace", DEFAULT_NAMESPACE),
            config.get("producer", DEFAULT_PRODUCER),
            config.get("facets_schema_url", FACETS_SCHEMA),
        )
        retry = config.get("retry") or {}
        try:
            self.retry = RetryPolicy(**retry) if retry else RetryPolicy()
        except TypeError as exc:
            raise InputError(f"bad OpenLineage [retry] settings: {exc}") from exc
        self.client = client if client is not None else make_client(config)

    def policy(self, event: Event) -> list[Intent]:
        return [Intent(CHANNEL, {"event_type": event.event_type, "event": event.model_dump(mode="json")})]

    def perform(self, effect: Effect) -> str | None:
        payload = effect.payload
        cls = BY_TYPE.get(payload.get("event_type"))
        if cls is None:
            raise EffectFailed(f"unknown event type {payload.get('event_type')!r}", permanent=True)
        ol_event = self.mapper.map(cls.model_validate(payload["event"]))
        try:
            self.client.emit(ol_event)
        except Exception as exc:  # noqa: BLE001 - any transport failure is retried, then dead
            raise EffectFailed(f"{type(exc).__name__}: {exc}") from exc
        kind = type(ol_event).__name__
        return f"{kind} sent through {self.client.transport.kind}"

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing must not hide the run's outcome
                pass


def build(options: ConsumerOptions) -> OpenLineageConsumer:
    """The factory ``ledger consume openlineage`` calls."""
    return OpenLineageConsumer(load_config(options.config_path, options.env or os.environ))
