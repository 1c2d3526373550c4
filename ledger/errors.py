"""One family of errors, named after PEP 249's, so that callers catch one thing
whatever the backend. The CLI maps each class to a documented exit code."""

from __future__ import annotations

EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT): 128 + the signal's number, as a shell reports it."""


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    exit_code = 3


class InputError(LedgerError):
    """The caller's input is malformed: bad JSON, unknown event type, missing field."""

    exit_code = 2


class InvalidEvent(InputError):
    """A new event is malformed on its own (a hostile actor name, a time out of
    range, bounds out of order…), whatever the history: bad input, nothing written.
    Stored events are not re-judged by these checks."""

    exit_code = 2

    def __init__(self, rule: str, reason: str):
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


class RuleViolation(LedgerError):
    """The event breaks a lifecycle rule; nothing was written."""

    exit_code = 1

    def __init__(self, rule: str, reason: str):
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


class ConflictError(RuleViolation):
    """Another writer appended to the same model stream first."""

    def __init__(self, reason: str):
        super().__init__("concurrent-write", reason)


class DecodeError(LedgerError):
    """Stored bytes cannot be decoded: bad framing, unknown fingerprint, bad body."""

    exit_code = 1


class SchemaError(LedgerError):
    """The schema catalogue is inconsistent (e.g. two schemas under one fingerprint)."""


class BackendError(LedgerError):
    """The log or a database is unreachable or misconfigured."""

    exit_code = 3


class NotFound(LedgerError):
    """An unknown model, version or record was asked for."""

    exit_code = 4


class WrongLog(InputError):
    """A database that follows one log was pointed at another: its stored positions
    would be applied to the wrong records. Nothing was applied."""

    exit_code = 2


class NotAuthorized(LedgerError):
    """The ledger service refused the caller: no or unknown token (HTTP 401), or
    the principal lacks the role for the action (403). Nothing was written."""

    exit_code = 2
