"""The Python client of the ledger service: ``emit`` over HTTP, with safe retries.

    from ledger.client import Ledger

    with Ledger.open() as ledger:     # LEDGER_URL + LEDGER_TOKEN set: the service
        ledger.emit(ModelDeployed(model="churn", version=3, actor="deployer",
                                  environment="production"))

Same answers as the direct client: :class:`ledger.append.Accepted`, or the error
family (:class:`RuleViolation` with the rule's name, :class:`ConflictError`,
:class:`InputError`, :class:`NotAuthorized`, :class:`BackendError`).

Retries are safe because a draft carries its event id from the moment it is made:
sending it again is answered with the recorded event (``duplicate=True``), never
written twice. The client retries what may not have been decided — a connection
refused or lost, a timeout, 503 (not ready, or outcome unknown) — with jittered
back-off, until ``retry_for`` seconds have passed; then it raises
:class:`BackendError` ("outcome unknown: retry with the same event id").
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable

import httpx

from ledger.append import Accepted
from ledger.errors import BackendError, ConflictError, DecodeError, InputError, LedgerError, NotAuthorized, NotFound, RuleViolation
from ledger.events import BY_TYPE, Event
from ledger.log import Position

SET_BY_LEDGER = {"sequence", "prev_hash", "recorded_at"}


def draft_json(event: Event) -> dict:
    """The JSON the service takes for a draft."""
    # recorded_by is the service's to set: a draft naming one is sent as is and refused.
    skip = SET_BY_LEDGER | ({"recorded_by"} if event.recorded_by is None else set())
    return {"event_type": event.event_type, **event.model_dump(mode="json", exclude=skip)}


def _accepted(item: dict) -> Accepted:
    event = BY_TYPE[item["event_type"]].model_validate(item["event"])
    partition, _, offset = item["position"].partition(":")
    return Accepted(event, Position(int(partition), int(offset)), item["hash"], bool(item.get("duplicate")))


def _error(answer: httpx.Response) -> LedgerError:
    try:
        problem = answer.json()
        detail, rule, kind = problem.get("detail", ""), problem.get("rule", ""), problem.get("type", "")
    except ValueError:
        detail, rule, kind = answer.text[:200], "", ""
    status = answer.status_code
    if status in (401, 403):
        return NotAuthorized(f"the ledger service refused: {detail}")
    if status == 404:
        return NotFound(detail)
    if status == 409 and kind.endswith("/conflict"):
        return ConflictError(detail)
    if status == 409 and kind.endswith("/damaged-stream"):
        return DecodeError(detail)
    if status == 409:
        return RuleViolation(rule or "rule-violation", detail.removeprefix(f"{rule}: "))
    if status in (400, 413, 422):
        return InputError(detail)
    return BackendError(f"the ledger service answered {status}: {detail}")


class HttpLedger:
    """``emit`` and ``emit_many`` through the ledger service."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 15.0, retry_for: float = 30.0):
        if not url.startswith(("http://", "https://")):
            raise InputError(f"LEDGER_URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self.retry_for = retry_for
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def from_env(cls) -> HttpLedger | None:
        url = os.environ.get("LEDGER_URL")
        if not url:
            return None
        return cls(url, os.environ.get("LEDGER_TOKEN"))

    def _post(self, path: str, body: dict, params: dict | None = None) -> httpx.Response:
        give_up = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            why = None
            try:
                answer = self._http.post(path, json=body, params=params)
                if answer.status_code != 503:
                    return answer
                why = _error(answer)
            except httpx.TransportError as exc:
                why = exc
            attempt += 1
            pause = random.uniform(0, min(2.0, 0.05 * 2**attempt))
            if time.monotonic() + pause > give_up:
                raise BackendError(
                    f"no answer from the ledger service at {self.url} within {self.retry_for:g} s ({why}): "
                    "outcome unknown; retry with the same event id (a recorded event is answered as a duplicate)"
                )
            time.sleep(pause)

    def emit(self, event: Event, *, expected_sequence: int | None = None) -> Accepted:
        params = {"expected_sequence": expected_sequence} if expected_sequence is not None else None
        answer = self._post("/v1/events", draft_json(event), params)
        if answer.status_code not in (200, 201):
            raise _error(answer)
        return _accepted(answer.json())

    def emit_many(self, events: Iterable[Event], *, expected_sequence: int | None = None) -> list[Accepted]:
        body = {"events": [draft_json(e) for e in events], "expected_sequence": expected_sequence}
        answer = self._post("/v1/batches", body)
        if answer.status_code not in (200, 201):
            raise _error(answer)
        return [_accepted(item) for item in answer.json()["accepted"]]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpLedger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
