"""The ledger service: the one writer of the log, over authenticated HTTP.

``create_app(Settings(...))`` builds the FastAPI application; ``ledger serve``
runs it on uvicorn. The JSON API lives under ``/v1/``:

* ``POST /v1/events`` — one event: its fields as a JSON object plus ``event_type``
  (``ModelDeployed`` or the CLI name ``deploy``). 201 with the accepted event, or
  200 when its ``event_id`` was already recorded with the same action (a retry).
* ``POST /v1/batches`` — ``{"events": [...], "expected_sequence": N?}``: several
  events of one model, accepted all or none.
* ``GET /v1/models``, ``/v1/models/{model}``, ``/v1/models/{model}/versions/{n}``,
  ``/v1/lineage?node=churn@3``, ``/v1/audit``, ``/v1/decisions/pending`` — the views,
  brought up to date with the log before each read (as the CLI does).
* ``GET /v1/checkpoints``, ``/v1/checkpoints/latest``, ``/v1/proofs/inclusion``,
  ``/v1/proofs/consistency`` — the verifiable log (:mod:`ledger.service.proofs`).
* ``/healthz`` (the process answers), ``/readyz`` (it can accept appends),
  ``/metrics`` (Prometheus).

Authentication: ``Authorization: Bearer TOKEN``; the token names a principal
(:mod:`ledger.service.principals`). An event's ``actor`` is the principal (filled in
when absent); naming another actor needs the ``act-as`` role.

Deadline: every append is answered within ``Settings.deadline`` seconds (10 by
default): accepted, refused, or 503 ``outcome-unknown`` — retry with the same event
ids, which is always safe (a recorded event is answered as a duplicate).
"""


import asyncio
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from ledger import config, jsonio
from ledger.append import check_drafts
from ledger.errors import InputError
from ledger.events import BY_CLI_NAME, BY_TYPE, EVENT_CLASSES, SHA256_HEX, Event
from ledger.service.metrics import Metrics
from ledger.service.principals import Principal, Principals
from ledger.service.problems import MEDIA_TYPE, Problem, from_error
from ledger.service.writer import NotOwner, Writers
from ledger.service.writer import Request as AppendRequest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8_000_000
"""Largest request body: a batch of a few large events (each at most 1,000,000
bytes encoded, see ``ledger.append.MAX_EVENT_BYTES``)."""
MAX_BATCH = 1000
SET_BY_LEDGER = ("sequence", "prev_hash", "recorded_at", "recorded_by")
STUCK_S = 3.0
"""A round running longer than this makes the service not ready (rounds take
milliseconds when the log answers)."""


@dataclass
class Settings:
    log_url: str
    principals: str
    db_url: str | None = None
    deadline: float = 10.0
    """Seconds within which every append is answered."""
    open_retry: float = 1.0
    advertise_url: str | None = None
    """This instance's URL for its peers: set, on Kafka, instances share the
    partitions through a consumer group and forward requests to the owner."""


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())


def _draft(fields: Any, principal: Principal, where: str) -> Event:
    if not isinstance(fields, dict):
        raise Problem(400, "malformed-request", f"{where} must be a JSON object holding the event's fields")
    fields = dict(fields)
    name = fields.pop("event_type", None)
    if not isinstance(name, str):
        raise Problem(422, "invalid-event", f"{where} needs an event_type (one of {', '.join(BY_TYPE)})")
    cls = BY_TYPE.get(name) or BY_CLI_NAME.get(name)
    if cls is None:
        raise Problem(422, "invalid-event", f"{where}: unknown event_type {name!r}; use one of {', '.join(BY_TYPE)}")
    if fields.get("recorded_by", "") is None:
        del fields["recorded_by"]  # a client echoing an event's null: nothing claimed
    for forbidden in SET_BY_LEDGER:
        if forbidden in fields:
            raise Problem(422, "invalid-event", f"{where}: {forbidden!r} is set by the ledger, not by the emitter")
    fields.setdefault("actor", principal.name)
    try:
        draft = cls.model_validate(fields)
    except ValidationError as exc:
        raise Problem(422, "invalid-event", f"{where}: invalid {cls.event_type}: {_validation_message(exc)}") from exc
    # An act-as request (refused by _authorize unless the principal may): the
    # event keeps who authenticated, not only whom it names (schema v4).
    return draft if draft.actor == principal.name else draft.model_copy(update={"recorded_by": principal.name})


def _authorize(principal: Principal, draft: Event) -> None:
    role = Principal.role_for(draft.event_type, getattr(draft, "environment", None))
    if not principal.may(role):
        raise Problem(
            403, "forbidden", f"principal {principal.name!r} may not record {draft.event_type} (needs role {role!r})", rule="role"
        )
    if draft.actor != principal.name and not principal.may("act-as"):
        raise Problem(
            403, "forbidden",
            f"principal {principal.name!r} may not record events as {draft.actor!r} (needs role 'act-as')",
            rule="actor",
        )


def _event_schemas() -> tuple[dict, dict]:
    """A JSON schema of one event draft (any type), and the definitions it uses."""
    variants, defs = [], {}
    for cls in EVENT_CLASSES:
        schema = cls.model_json_schema(ref_template="#/components/schemas/{model}")
        defs.update(schema.pop("$defs", {}))
        for name in SET_BY_LEDGER:
            schema["properties"].pop(name, None)
        schema["properties"] = {"event_type": {"const": cls.event_type}, **schema["properties"]}
        schema["required"] = ["event_type", *[r for r in schema.get("required", []) if r != "actor"]]
        schema["title"] = f"{cls.event_type}Draft"
        defs[schema["title"]] = schema
        variants.append({"$ref": f"#/components/schemas/{schema['title']}"})
    return {"oneOf": variants, "discriminator": {"propertyName": "event_type"}}, defs


class Service:
    """Everything one running instance holds: the log, its writers, the views."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.principals: Principals | None = None
        self.metrics = Metrics()
        self.log = None
        self.writers: Writers | None = None
        self.membership = None
        self.engine = None
        self._views_lock = threading.Lock()
        self._closing = threading.Event()
        self.not_ready_reason = "starting: opening the log"
        self._opener = threading.Thread(target=self._open, name="ledger-open", daemon=True)

    def start(self) -> None:
        self.principals = Principals(self.settings.principals)
        self._opener.start()

    def _open(self) -> None:
        # The log may be unreachable at start: keep trying, answering 503 meanwhile.
        while not self._closing.is_set():
            try:
                log_ = config.open_log(self.settings.log_url)
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; readiness tells why
                self.not_ready_reason = f"cannot open the log yet: {exc}"
                log.warning(self.not_ready_reason)
                self._closing.wait(self.settings.open_retry)
                continue
            self.log = log_
            if self.settings.advertise_url and hasattr(log_, "describe_groups"):
                from ledger.service.membership import Membership

                self.writers = Writers(log_, observer=self.metrics, partitions=[])
                self.membership = Membership(log_, self.settings.advertise_url, self.writers.assign, self.writers.revoke)
                self.membership.start()
            else:
                self.writers = Writers(log_, observer=self.metrics)
                self.writers.start()
            return

    def readiness(self) -> str | None:
        """None when ready, else why not."""
        if self.writers is None:
            return self.not_ready_reason
        if self.membership is not None and not self.membership.joined.is_set():
            return "starting: joining the group of writer instances"
        if not self.writers.ready:
            return "starting: taking the writer role and reading the log"
        failing = self.writers.failing()
        if failing:
            return f"the log is unreachable (partitions {failing}); appends are answered 503"
        stuck = self.writers.stuck(STUCK_S)
        if stuck:
            return f"the log has not answered for more than {STUCK_S:g} s (partitions {stuck})"
        return None

    def views(self):
        """The projection database, caught up with the log."""
        from projections import db
        from projections.runner import project

        if self.log is None:
            raise Problem(503, "unavailable", self.not_ready_reason, rule="not-ready")
        with self._views_lock:
            if self.engine is None:
                self.engine = db.open_db(config.db_url(self.settings.db_url))
            project(self.log, self.engine)
        return self.engine

    def close(self) -> None:
        self._closing.set()
        if self.membership is not None:
            self.membership.stop()
        if self.writers is not None:
            self.writers.stop()
        if self.log is not None:
            self.log.close()
        if self.engine is not None:
            self.engine.dispose()


def _query_names(route) -> frozenset[str]:
    """The query parameters ``route`` takes, its dependencies' included (kept on the route)."""
    names = getattr(route, "_ledger_query_names", None)
    if names is None:
        found, pending = set(), [route.dependant]
        while pending:
            dependant = pending.pop()
            found.update(p.alias for p in dependant.query_params)
            pending.extend(dependant.dependencies)
        names = route._ledger_query_names = frozenset(found)
    return names


async def _known_query(request: Request) -> None:
    """A query parameter the route does not take is refused, not ignored: a
    mistyped filter (``?modle=churn``) must not answer as if nothing were asked."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    known = _query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise Problem(422, "invalid-request", f"unknown query parameter {unknown[0]!r} (this route takes: {takes})")


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.close)

    app = FastAPI(
        title="Model lifecycle ledger",
        version="1",
        summary="Record and read the lifecycle of ML models: an event-sourced, tamper-evident ledger.",
        lifespan=lifespan,
        dependencies=[Depends(_known_query)],
    )
    app.state.service = service
    bearer = HTTPBearer(auto_error=False, description="A principal's token (`ledger principals add`).")

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # Only reads and proofs get here (the append routes validate by hand).
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return Problem(422, "invalid-request", detail).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "malformed-request")
        what = f"{request.method} {request.url.path}"
        detail = {404: f"no such route: {what}", 405: f"method not allowed: {what}"}.get(exc.status_code, str(exc.detail))
        return Problem(exc.status_code, kind, detail, headers=dict(exc.headers or {})).response()


    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return from_error(exc).response()

    # async: a sync dependency costs a thread-pool hop per request.
    async def principal(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        challenge = {"WWW-Authenticate": 'Bearer realm="ledger"'}
        if credentials is None:
            raise Problem(401, "unauthenticated", "send Authorization: Bearer TOKEN", headers=challenge)
        found = service.principals.authenticate(credentials.credentials)
        if found is None:
            raise Problem(401, "unauthenticated", "unknown or revoked token", headers=challenge)
        return found

    async def reader(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.may("read"):
            raise Problem(403, "forbidden", f"principal {who.name!r} may not read the views (needs role 'read')", rule="role")
        return who

    async def _body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Problem(400, "malformed-request", f"the body is larger than {MAX_BODY_BYTES:,} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise Problem(400, "malformed-request", f"the body is larger than {MAX_BODY_BYTES:,} bytes")
        request.state.raw = raw
        try:
            # The CLI's strict reading: no duplicate keys, NaN, 1e999 or deep nesting.
            return jsonio.loads(raw)
        except InputError as exc:
            raise Problem(400, "malformed-request", str(exc)) from exc

    async def _forward(request: Request, partition: int, started: float):
        """Hand a request for a partition this instance does not write to the
        instance that does (found through the group), and relay its answer."""
        unavailable = {"rule": "not-ready", "headers": {"Retry-After": "1"}}
        if service.membership is None:
            raise Problem(503, "unavailable", f"partition {partition} has no writer here", **unavailable)
        if request.headers.get("x-ledger-forwarded"):
            raise Problem(503, "unavailable", f"partition {partition} is moving between instances; retry", **unavailable)
        owner = await asyncio.to_thread(service.membership.owner_of, partition)
        if owner is None or owner.rstrip("/") == settings.advertise_url.rstrip("/"):
            service.membership.forget_owners()
            raise Problem(503, "unavailable", f"partition {partition} has no writer yet (the group is rebalancing); retry", **unavailable)
        headers = {
            "authorization": request.headers.get("authorization", ""),
            "content-type": "application/json",
            "x-ledger-forwarded": settings.advertise_url,
        }
        left = max(0.1, started + settings.deadline - time.monotonic())
        try:
            async with httpx.AsyncClient(timeout=left) as http:
                answer = await http.post(
                    f"{owner.rstrip('/')}{request.url.path}", params=request.query_params, content=request.state.raw, headers=headers
                )
        except httpx.HTTPError as exc:
            service.membership.forget_owners()
            raise Problem(
                503, "unavailable",
                f"forwarding to {owner}, the writer of partition {partition}, failed ({type(exc).__name__}): "
                "outcome unknown; retry with the same event ids",
                rule="outcome-unknown", headers={"Retry-After": "1"},
            ) from exc
        forwarded = {"x-ledger-served-by": owner}
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"), headers=forwarded)

    async def _append(drafts: list[Event], who: Principal, expected_sequence: int | None) -> list[dict]:
        started = time.monotonic()
        for draft in drafts:
            _authorize(who, draft)
        dumps: list[dict] = []
        try:
            model = check_drafts(drafts, dumps=dumps)
        except InputError as exc:
            raise Problem(422, "invalid-event", str(exc)) from exc
        if service.writers is None or not service.writers.ready:
            raise Problem(503, "unavailable", service.readiness() or "not ready", rule="not-ready", headers={"Retry-After": "1"})
        deadline = started + settings.deadline
        request = AppendRequest(model, drafts, expected_sequence, deadline, dumps=dumps)
        future = asyncio.wrap_future(service.writers.submit(request))  # NotOwner: forwarded by the caller
        # asyncio.wait, not wait_for: a timeout must not cancel the request under
        # way (its outcome is then unknown; the retry finds it).
        done, _ = await asyncio.wait({future}, timeout=max(0.0, deadline - time.monotonic()))
        m = service.metrics
        if not done:
            m.append_seconds.labels("unknown").observe(time.monotonic() - started)
            for draft in drafts:
                m.rejected.labels(draft.event_type, "outcome-unknown").inc()
            raise Problem(
                503, "unavailable",
                f"no answer from the log within {settings.deadline:g} s: outcome unknown; "
                "retry with the same event ids (an event already recorded is answered as a duplicate)",
                rule="outcome-unknown", headers={"Retry-After": "1"},
            )
        exc = future.exception()
        if isinstance(exc, NotOwner):
            raise exc
        if exc is not None:
            problem = from_error(exc)
            m.append_seconds.labels("refused" if problem.status < 500 else "unknown").observe(time.monotonic() - started)
            for draft in drafts:
                m.rejected.labels(draft.event_type, problem.rule).inc()
            if problem.status == 500:
                log.error("append failed", exc_info=exc)
            raise problem
        answers = future.result()
        m.append_seconds.labels("accepted").observe(time.monotonic() - started)
        for answer in answers:
            (m.duplicates if answer.duplicate else m.accepted).labels(answer.event.event_type).inc()
        result = [a.as_dict() for a in answers]
        for item in result:
            item["recorded_by"] = who.name
        return result

    event_schema, event_defs = _event_schemas()

    # The two append routes are the hot path: plain Starlette routes, in front of
    # the router, with no dependency injection or parameter models (~0.1 ms of
    # CPU per request). ``contract`` declares the same routes the FastAPI way
    # for the OpenAPI document only; its endpoints are never called.
    challenge = {"WWW-Authenticate": 'Bearer realm="ledger"'}

    def _caller(request: Request) -> Principal:
        """The ``principal`` dependency, by hand: ``HTTPBearer``'s reading of the header."""
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if not token or scheme.lower() != "bearer":
            raise Problem(401, "unauthenticated", "send Authorization: Bearer TOKEN", headers=challenge)
        found = service.principals.authenticate(token)
        if found is None:
            raise Problem(401, "unauthenticated", "unknown or revoked token", headers=challenge)
        return found

    def _expected_sequence(request: Request) -> int | None:
        """``Query(ge=0)``, by hand, with pydantic's messages."""
        raw = request.query_params.get("expected_sequence")
        if raw is None:
            return None
        try:
            value = int(raw.strip())
        except ValueError:
            raise Problem(
                422, "invalid-event", "query.expected_sequence: Input should be a valid integer, unable to parse string as an integer"
            ) from None
        if value < 0:
            raise Problem(422, "invalid-event", "query.expected_sequence: Input should be greater than or equal to 0")
        return value

    async def append_event(request: Request) -> Response:
        started = time.monotonic()
        try:
            who = _caller(request)
            expected_sequence = _expected_sequence(request)
            draft = _draft(await _body(request), who, "the event")
            try:
                [answer] = await _append([draft], who, expected_sequence)
            except NotOwner as moved:
                return await _forward(request, moved.partition, started)
        except Problem as problem:
            return problem.response()
        return JSONResponse(answer, status_code=200 if answer["duplicate"] else 201)

    async def append_batch(request: Request) -> Response:
        try:
            who = _caller(request)
            body = await _body(request)
            if not isinstance(body, dict) or not isinstance(body.get("events"), list):
                raise Problem(400, "malformed-request", 'the body must be {"events": [...], "expected_sequence": N?}')
            unknown = set(body) - {"events", "expected_sequence"}
            if unknown:
                raise Problem(422, "invalid-event", f"unknown fields {sorted(unknown)}")
            expected = body.get("expected_sequence")
            if expected is not None and (type(expected) is not int or expected < 0):
                raise Problem(422, "invalid-event", "expected_sequence must be a non-negative integer")
            if not 1 <= len(body["events"]) <= MAX_BATCH:
                raise Problem(422, "invalid-event", f"a batch holds 1 to {MAX_BATCH} events")
            started = time.monotonic()
            drafts = [_draft(item, who, f"events[{i}]") for i, item in enumerate(body["events"])]
            try:
                answers = await _append(drafts, who, expected)
            except NotOwner as moved:
                return await _forward(request, moved.partition, started)
        except Problem as problem:
            return problem.response()
        status = 200 if all(a["duplicate"] for a in answers) else 201
        return JSONResponse({"accepted": answers}, status_code=status)

    app.router.routes[:0] = [
        Route("/v1/events", append_event, methods=["POST"], include_in_schema=False),
        Route("/v1/batches", append_batch, methods=["POST"], include_in_schema=False),
    ]

    contract = APIRouter()

    @contract.post(
        "/v1/events",
        status_code=201,
        tags=["append"],
        summary="Record one lifecycle event",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": event_schema}}}},
        responses={200: {"description": "Already recorded (a retry with the same event id)"}},
    )
    async def post_event(
        request: Request,
        who: Annotated[Principal, Depends(principal)],
        expected_sequence: Annotated[int | None, Query(ge=0, description="Refuse (409 conflict) unless the stream is at this sequence.")] = None,
    ):
        raise NotImplementedError("answered by append_event")

    @contract.post(
        "/v1/batches",
        status_code=201,
        tags=["append"],
        summary="Record several events of one model, all or none",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {"type": "array", "items": event_schema, "minItems": 1, "maxItems": MAX_BATCH},
                                "expected_sequence": {"type": ["integer", "null"], "minimum": 0},
                            },
                        }
                    }
                },
            }
        },
    )
    async def post_batch(request: Request, who: Annotated[Principal, Depends(principal)]):
        raise NotImplementedError("answered by append_batch")

    def _read(view: str, fn):
        started = time.monotonic()
        try:
            return fn(service.views())
        except Problem:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a problem
            raise from_error(exc) from exc
        finally:
            service.metrics.read_seconds.labels(view).observe(time.monotonic() - started)

    @app.get("/v1/models", tags=["views"], summary="Every model: status, versions, deployments")
    def get_models(who: Annotated[Principal, Depends(reader)]):
        from projections import queries

        return _read("models", lambda engine: {"models": queries.list_models(engine)})

    @app.get("/v1/models/{model}", tags=["views"], summary="A model's versions and their status")
    def get_model(model: str, who: Annotated[Principal, Depends(reader)]):
        from projections import queries

        return _read("show", lambda engine: {"model": model, "versions": queries.model_versions(engine, model)})

    @app.get(
        "/v1/models/{model}/versions/{version}",
        tags=["views"],
        summary="One version in full",
        description="The document `ledger show MODEL@N --json` prints. `verified` is `unchecked`: "
        "a read does not re-verify the model's stream (`ledger verify`, `/v1/checkpoints`).",
    )
    def get_version(model: str, version: Annotated[int, Path(ge=1, le=2**31 - 1)], who: Annotated[Principal, Depends(reader)]):
        from projections import queries, trust

        return _read(
            "show", lambda engine: queries.version_document(engine, model, version, verified=trust.verdict(model, None))
        )

    @app.get("/v1/lineage", tags=["views"], summary="What a node came from (up) or what came of it (down)")
    def get_lineage(
        who: Annotated[Principal, Depends(reader)],
        node: Annotated[str, Query(description="MODEL@VERSION or a node id such as snapshot:churn/2026-03")],
        direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
        depth: Annotated[int | None, Query(ge=0)] = None,
    ):
        from projections import queries

        return _read(
            "lineage", lambda engine: queries.lineage(engine, queries.resolve_node(node), direction=direction, depth=depth)
        )

    @app.get("/v1/audit", tags=["views"], summary="The audit trail, filtered")
    def get_audit(
        who: Annotated[Principal, Depends(reader)],
        model: str | None = None,
        actor: str | None = None,
        event_type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
        limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ):
        from projections import queries

        return _read(
            "audit",
            lambda engine: {
                "events": queries.audit(
                    engine, model=model, actor=actor, event_type=event_type, since=since, until=until, limit=limit,
                    version=version,
                )
            },
        )

    @app.get("/v1/decisions/pending", tags=["views"], summary="Evaluated versions awaiting approval or rejection")
    def get_pending(who: Annotated[Principal, Depends(reader)]):
        from projections import queries

        return _read("pending", lambda engine: {"pending": queries.pending(engine)})

    from ledger.service.proofs import add_routes as add_proof_routes

    add_proof_routes(app, service, reader)

    @app.get("/healthz", tags=["operations"], summary="The process answers")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="The service accepts appends")
    def readyz():
        why = service.readiness()
        service.metrics.ready.set(0 if why else 1)
        if why:
            raise Problem(503, "unavailable", why, rule="not-ready", headers={"Retry-After": "1"})
        return {"status": "ready", "log": service.log.url, "partitions": sorted(service.writers.by_partition)}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics():
        return PlainTextResponse(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=[*contract.routes, *app.routes])
            schema.setdefault("components", {}).setdefault("schemas", {}).update(event_defs)
            schema["components"]["schemas"]["Problem"] = {
                "type": "object",
                "description": "RFC 9457 problem details, with the rule that refused the request",
                "properties": {k: {"type": "string"} for k in ("type", "title", "detail", "rule")} | {"status": {"type": "integer"}},
                "required": ["type", "title", "status", "detail", "rule"],
            }
            schema["components"]["schemas"]["Accepted"] = ACCEPTED_SCHEMA
            _document_answers(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


ACCEPTED_SCHEMA = {
    "type": "object",
    "description": "An event the ledger holds: just recorded (201) or found by its event id (200, a retry)",
    "required": [
        "accepted", "event_id", "event_type", "model", "version", "sequence", "hash", "prev_hash",
        "position", "recorded_at", "duplicate", "event", "recorded_by",
    ],
    "properties": {
        "accepted": {"const": True},
        "event_id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string"},
        "model": {"type": "string"},
        "version": {"type": ["integer", "null"]},
        "sequence": {"type": "integer", "minimum": 1},
        "hash": {"type": "string", "pattern": f"^{SHA256_HEX}$"},
        "prev_hash": {"type": "string", "pattern": f"^{SHA256_HEX}$"},
        "position": {"type": "string", "description": "partition:offset in the log", "pattern": "^[0-9]+:[0-9]+$"},
        "recorded_at": {"type": "string", "format": "date-time"},
        "duplicate": {"type": "boolean", "description": "true when the event id was already recorded (nothing new was written)"},
        "event": {"type": "object", "description": "The event as stored, with the ledger's sequence, prev_hash, recorded_at and actor"},
        "recorded_by": {"type": "string", "description": "The principal whose token recorded this request"},
    },
}

# The errors each route can answer (application/problem+json, see problems.py); a
# route's 422 replaces FastAPI's own HTTPValidationError, which this service never sends.
_ERRORS = {
    "/v1/events": (400, 401, 403, 409, 422, 503),
    "/v1/batches": (400, 401, 403, 409, 422, 503),
    "/v1/models": (401, 403, 503),
    "/v1/models/{model}": (401, 403, 404, 503),
    "/v1/models/{model}/versions/{version}": (401, 403, 404, 422, 503),
    "/v1/lineage": (401, 403, 404, 422, 503),
    "/v1/audit": (401, 403, 422, 503),
    "/v1/decisions/pending": (401, 403, 503),
    "/v1/checkpoints": (401, 403, 503),
    "/v1/checkpoints/latest": (401, 403, 404, 422, 503),
    "/v1/proofs/inclusion": (401, 403, 404, 409, 422, 503),
    "/v1/proofs/consistency": (401, 403, 404, 409, 422, 503),
    "/readyz": (503,),
}


def _document_answers(schema: dict) -> None:
    from ledger.service.problems import TITLES

    problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    accepted = {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}
    batch = {"application/json": {"schema": {
        "type": "object", "required": ["accepted"],
        "properties": {"accepted": {"type": "array", "items": {"$ref": "#/components/schemas/Accepted"}}},
    }}}
    kinds = {400: "malformed-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found", 409: "conflict", 422: "invalid-event", 503: "unavailable"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            responses.pop("422", None)
            for status in _ERRORS.get(path, ()):
                responses[str(status)] = {"description": TITLES[kinds[status]], "content": problem}
            if path == "/v1/events":
                responses["201"] = {"description": "Recorded", "content": accepted}
                responses["200"] = {"description": "Already recorded (a retry with the same event id)", "content": accepted}
            elif path == "/v1/batches":
                responses["201"] = {"description": "Recorded, all or none", "content": batch}
                responses["200"] = {"description": "Every event already recorded (a retry)", "content": batch}
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)


def openapi_document() -> str:
    """The OpenAPI document of the service, as checked into ``docs/openapi.json``."""
    app = create_app(Settings(log_url="sqlite://", principals=""))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m ledger.service.app > docs/openapi.json
    print(openapi_document(), end="")


__all__ = ["MEDIA_TYPE", "Settings", "create_app"]
