"""The verifiable log over HTTP (role ``read``): the signed checkpoints stored
beside the log, inclusion receipts and consistency proofs, in the formats the CLI
writes and checks (:mod:`ledger.proofs`). The service signs nothing: checkpoints
are signed by ``ledger checkpoint`` with the log's key, elsewhere.

* ``GET /v1/checkpoints`` — the latest checkpoint of every partition (JSON);
* ``GET /v1/checkpoints/latest?partition=P`` — one, as the C2SP signed note;
* ``GET /v1/proofs/inclusion?event_id=ID&tree_size=N`` — a c2sp.org/tlog-proof
  receipt (``ledger verify --receipt FILE --key log.pub`` checks it);
* ``GET /v1/proofs/consistency?partition=P&old_size=M&new_size=N`` — the
  c2sp.org/tlog-witness ``add-checkpoint`` body: ``old M``, the RFC 9162 proof, and
  the signed checkpoint of size N.
"""

import base64
import threading
import time
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from fastapi.responses import PlainTextResponse

from ledger.checkpoints import VerificationFailed
from ledger.service.principals import Principal
from ledger.service.problems import Problem, from_error

TEXT = "text/plain; charset=utf-8"
MAX_SIZE = 2**63 - 1

_TEXT_ANSWER = {200: {"content": {TEXT: {"schema": {"type": "string"}}}}}


def add_routes(app: FastAPI, service, reader: Callable) -> None:
    """Register the endpoints on ``app``; ``service.log`` is the log once open,
    ``reader`` the dependency that requires the ``read`` role."""
    lock = threading.Lock()
    holder: dict = {}

    def source():
        from ledger.proofs import ProofSource

        if service.log is None:
            raise Problem(503, "unavailable", service.not_ready_reason, rule="not-ready", headers={"Retry-After": "1"})
        with lock:
            if "source" not in holder:
                holder["source"] = ProofSource(service.log)
            return holder["source"]

    def answer(view: str, fn):
        started = time.monotonic()
        try:
            return fn(source())
        except Problem:
            raise
        except VerificationFailed as exc:
            # The log no longer extends what it signed: nothing is proven from it.
            raise Problem(409, "conflict", str(exc), rule="log-inconsistent") from exc
        except Exception as exc:  # noqa: BLE001 - mapped to a problem
            problem = from_error(exc)
            if problem.status == 422:
                problem = Problem(422, "invalid-request", str(exc))
            raise problem from exc
        finally:
            service.metrics.read_seconds.labels(view).observe(time.monotonic() - started)

    def partition_of(src, partition: int | None) -> int:
        if partition is not None:
            return partition
        partitions = src.log.partitions()
        if len(partitions) != 1:
            raise Problem(422, "invalid-request", f"the log has {len(partitions)} partitions: give ?partition= (0 to {len(partitions) - 1})")
        return partitions[0]

    def text(body: str) -> PlainTextResponse:
        return PlainTextResponse(body, media_type=TEXT)

    @app.get("/v1/checkpoints", tags=["verifiable log"], summary="The latest signed checkpoint of every partition")
    def get_checkpoints(who: Annotated[Principal, Depends(reader)]):
        def checkpoints(src):
            from ledger.checkpoints import partition_of as partition_in

            return {
                "checkpoints": [
                    {
                        "origin": s.checkpoint.origin,
                        "partition": partition_in(s.checkpoint.origin),
                        "size": s.checkpoint.size,
                        "root": base64.b64encode(s.checkpoint.root).decode(),
                        "note": str(s),
                    }
                    for s in src.latest()
                ]
            }

        return answer("checkpoints", checkpoints)

    @app.get(
        "/v1/checkpoints/latest",
        tags=["verifiable log"],
        summary="The latest signed checkpoint of a partition (C2SP signed note)",
        response_class=PlainTextResponse,
        responses=_TEXT_ANSWER,
    )
    def get_latest_checkpoint(
        who: Annotated[Principal, Depends(reader)],
        partition: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Needed when the log has several partitions.")] = None,
    ):
        return answer("checkpoint", lambda src: text(str(src.latest_of(partition_of(src, partition)))))

    @app.get(
        "/v1/proofs/inclusion",
        tags=["verifiable log"],
        summary="An inclusion receipt for one event (c2sp.org/tlog-proof, checked by `ledger verify --receipt`)",
        response_class=PlainTextResponse,
        responses=_TEXT_ANSWER,
    )
    def get_inclusion(
        who: Annotated[Principal, Depends(reader)],
        event_id: Annotated[str, Query(max_length=64, description="The event's id (a UUID).")],
        tree_size: Annotated[
            int | None, Query(ge=1, le=MAX_SIZE, description="The size of a signed checkpoint (default: the latest of the event's partition).")
        ] = None,
    ):
        try:
            canonical = str(uuid.UUID(event_id))
        except ValueError:
            raise Problem(422, "invalid-request", f"{event_id!r} is not an event id (a UUID)") from None
        return answer("inclusion", lambda src: text(str(src.inclusion(canonical, tree_size))))

    @app.get(
        "/v1/proofs/consistency",
        tags=["verifiable log"],
        summary="A consistency proof between two tree sizes (c2sp.org/tlog-witness add-checkpoint body)",
        response_class=PlainTextResponse,
        responses=_TEXT_ANSWER,
    )
    def get_consistency(
        who: Annotated[Principal, Depends(reader)],
        old_size: Annotated[int, Query(ge=0, le=MAX_SIZE, description="The older tree size (a checkpoint the client kept).")],
        new_size: Annotated[
            int | None, Query(ge=0, le=MAX_SIZE, description="The size of a signed checkpoint (default: the latest).")
        ] = None,
        partition: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Needed when the log has several partitions.")] = None,
    ):
        return answer("consistency", lambda src: text(str(src.consistency(partition_of(src, partition), old_size, new_size))))
