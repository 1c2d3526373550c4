"""Errors as RFC 9457 problem details, with the rule a client can act on.

Every error answer is ``application/problem+json``::

    {"type": "/problems/rule-violation", "title": "Rejected by a lifecycle rule",
     "status": 409, "detail": "four-eyes: 'alice' trained churn@3 and cannot also approve it",
     "rule": "four-eyes"}

``type`` is a URI reference relative to the service (RFC 9457 §3.1.1); ``rule`` is
the stable rule name (``ledger.rules``), or the name of what went wrong otherwise.

==========  ===============================  ============================================
status      type                             when
==========  ===============================  ============================================
400         /problems/malformed-request      not JSON, not an object, too large
401         /problems/unauthenticated        no or unknown bearer token
403         /problems/forbidden              the principal lacks the role, or names another actor
404         /problems/not-found              unknown model, version, lineage node or route
405         /problems/method-not-allowed     a route asked with a method it does not answer
409         /problems/rule-violation         a lifecycle rule refused the event (``rule``)
409         /problems/conflict               ``expected_sequence`` not met, or the writer role
                                             was lost too often (retry with the same event ids)
409         /problems/damaged-stream         the model's stream is damaged; nothing is accepted
422         /problems/invalid-event          the JSON is not a valid event of its type
422         /problems/invalid-request        a read's or proof's query is malformed or impossible
                                             (an unknown parameter, a version below 1, a tree
                                             size that does not hold the event, old size above new)
503         /problems/unavailable            not ready, or the log did not answer in time:
                                             outcome unknown, retry with the same event ids
==========  ===============================  ============================================
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ledger.errors import BackendError, ConflictError, DecodeError, InputError, LedgerError, NotFound, RuleViolation

MEDIA_TYPE = "application/problem+json"

TITLES = {
    "malformed-request": "Malformed request",
    "unauthenticated": "Not authenticated",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "rule-violation": "Rejected by a lifecycle rule",
    "conflict": "Conflict",
    "damaged-stream": "The model's stream is damaged",
    "invalid-event": "Invalid event",
    "invalid-request": "Invalid request",
    "method-not-allowed": "Method not allowed",
    "unavailable": "Service unavailable",
    "internal": "Internal error",
}


class Problem(Exception):
    def __init__(self, status: int, kind: str, detail: str, *, rule: str | None = None, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.rule = rule or kind
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {
            "type": f"/problems/{self.kind}",
            "title": TITLES[self.kind],
            "status": self.status,
            "detail": self.detail,
            "rule": self.rule,
            **self.extra,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers)


def from_error(exc: BaseException) -> Problem:
    """The problem a ledger error is, for a client."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ConflictError):
        return Problem(409, "conflict", str(exc.reason), rule=exc.rule)
    if isinstance(exc, RuleViolation):
        return Problem(409, "rule-violation", str(exc), rule=exc.rule)
    if isinstance(exc, DecodeError):
        return Problem(409, "damaged-stream", str(exc), rule="damaged-stream")
    if isinstance(exc, NotFound):
        return Problem(404, "not-found", str(exc))
    if isinstance(exc, InputError):
        return Problem(422, "invalid-event", str(exc))
    if isinstance(exc, BackendError):
        return Problem(503, "unavailable", str(exc), rule="outcome-unknown")
    if isinstance(exc, LedgerError):
        return Problem(503, "unavailable", str(exc))
    return Problem(500, "internal", f"internal error ({type(exc).__name__}); see the service's log")
