"""Where notifications go: an HTTP webhook, e-mail over SMTP, a file or stdout.

Every channel has one method, :meth:`Channel.send`, that delivers one stored
delivery and returns a short outcome, or raises
:class:`consumers.runner.EffectFailed` — ``permanent`` when trying again cannot
help (a 4xx answer, a refused recipient, a failed login), retryable otherwise (5xx,
408, 429, timeouts, refused connections). The runner does the retrying.

Webhook signature (how a receiver checks a request came from this ledger and was
not replayed later), in the style of Standard Webhooks / Stripe:

    signed  = f"{X-Ledger-Delivery}.{X-Ledger-Timestamp}.".encode() + raw_body
    X-Ledger-Signature: sha256=<hex HMAC-SHA256(secret, signed)>

See :func:`verify_signature` and ``docs/notifications.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import smtplib
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate

from consumers.runner import EffectFailed

USER_AGENT = "ledger-notify/1"
SIGNATURE_HEADER = "X-Ledger-Signature"
TIMESTAMP_HEADER = "X-Ledger-Timestamp"
DELIVERY_HEADER = "X-Ledger-Delivery"


def signed_content(delivery_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{delivery_id}.{timestamp}.".encode() + body


def signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ledger-Signature`` header value."""
    digest = hmac.new(secret.encode(), signed_content(delivery_id, timestamp, body), hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """What a receiver does: recompute the HMAC over the delivery id, timestamp and
    raw body, compare in constant time, and refuse timestamps older (or newer) than
    ``tolerance`` seconds, so a captured request cannot be replayed later."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery_id = lowered.get(DELIVERY_HEADER.lower())
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    given = lowered.get(SIGNATURE_HEADER.lower())
    if not (delivery_id and stamp and given):
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, delivery_id, timestamp, body), given)


def webhook_body(message: Mapping) -> bytes:
    """The exact bytes sent and signed: compact JSON with sorted keys."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class Channel(ABC):
    name: str

    @abstractmethod
    def send(self, delivery_id: str, attempt: int, payload: Mapping) -> str:
        """Deliver ``payload`` (``{"subject", "message"}``); return an outcome or raise EffectFailed."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and host name,
    against ``ca_file`` (PEM) when given, else the system's trusted CAs."""
    return ssl.create_default_context(cafile=ca_file)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would silently become a GET without the body and signature.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookChannel(Channel):
    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        ca_file: str | None = None,
    ):
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=tls_context(ca_file)))

    def request(self, delivery_id: str, attempt: int, message: Mapping) -> urllib.request.Request:
        body = webhook_body(message)
        timestamp = int(self.clock())
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Ledger-Event": str(message.get("event_type", "")),
            DELIVERY_HEADER: delivery_id,
            "Idempotency-Key": delivery_id,
            "X-Ledger-Attempt": str(attempt),
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, delivery_id, timestamp, body)
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, delivery_id: str, attempt: int, payload: Mapping) -> str:
        request = self.request(delivery_id, attempt, payload["message"])
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                return f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            detail = _snippet(exc)
            code = exc.code
            if code in (408, 429) or code >= 500:
                raise EffectFailed(
                    f"webhook {self.url} answered HTTP {code}{detail}",
                    retry_after=_retry_after(exc.headers.get("Retry-After") if exc.headers else None),
                ) from exc
            if 300 <= code < 400:
                where = exc.headers.get("Location") if exc.headers else None
                raise EffectFailed(
                    f"webhook {self.url} redirects (HTTP {code} to {where}); configure the final URL",
                    permanent=True,
                ) from exc
            raise EffectFailed(f"webhook {self.url} refused the delivery: HTTP {code}{detail}", permanent=True) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise EffectFailed(f"webhook {self.url}: TLS certificate refused: {exc.reason}", permanent=True) from exc
            raise EffectFailed(f"webhook {self.url} unreachable: {exc.reason}") from exc
        except (TimeoutError, socket.timeout) as exc:
            raise EffectFailed(f"webhook {self.url} timed out after {self.timeout}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise EffectFailed(f"webhook {self.url} failed: {type(exc).__name__}: {exc}") from exc


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(300).decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - the body is only a courtesy in the error message
        text = ""
    return f": {text}" if text else ""


class EmailChannel(Channel):
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        starttls: bool = False,
        use_ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ca_file: str | None = None,
    ):
        self.name = name
        self.ca_file = ca_file
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.username = username
        self.password = password
        self.timeout = timeout

    def email(self, delivery_id: str, payload: Mapping) -> EmailMessage:
        message = payload["message"]
        mail = EmailMessage()
        mail["Subject"] = _one_line(payload["subject"])
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        # A stable Message-ID lets mail systems drop a duplicate of a re-sent delivery.
        mail["Message-ID"] = f"<{delivery_id}@ledger>"
        mail["X-Ledger-Delivery"] = delivery_id
        mail["X-Ledger-Event-Id"] = str(message.get("event_id", ""))
        mail.set_content(
            f"{message.get('summary', '')}\n\n"
            f"model:       {message.get('model')}\n"
            f"version:     {message.get('version')}\n"
            f"event:       {message.get('event_type')} {message.get('event_id')}\n"
            f"actor:       {message.get('actor')}\n"
            f"occurred at: {message.get('occurred_at')}\n\n"
            f"{json.dumps(message.get('event', {}), indent=2, sort_keys=True)}\n"
        )
        return mail

    def send(self, delivery_id: str, attempt: int, payload: Mapping) -> str:
        mail = self.email(delivery_id, payload)
        where = f"SMTP {self.host}:{self.port}"
        try:
            # smtplib.SMTP_SSL without a context does not check the certificate:
            # the password and the mail would go to whoever answers.
            context = tls_context(self.ca_file)
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)
            raise EffectFailed(f"{where} refused every recipient: {_refusals(exc.recipients)}", permanent=permanent) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise EffectFailed(f"{where}: {exc}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            permanent = 500 <= exc.smtp_code < 600
            raise EffectFailed(f"{where} answered {exc.smtp_code} {text}", permanent=permanent) from exc
        except ssl.SSLCertVerificationError as exc:
            raise EffectFailed(f"{where}: TLS certificate refused: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise EffectFailed(f"{where} failed: {type(exc).__name__}: {exc}") from exc
        # Retrying a partial refusal would mail the accepted recipients twice.
        if refused:
            return f"sent to {len(self.recipients) - len(refused)}; refused {_refusals(refused)}"
        return f"sent to {len(self.recipients)} recipient(s)"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _one_line(text: str) -> str:
    # Names in the subject (actor, feature…) are free text in the ledger: a line
    # break there would make the header unsendable, and it must never add a header.
    return _CONTROL.sub(" ", text).strip()


def _refusals(recipients: Mapping) -> str:
    return ", ".join(
        f"{address} ({code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text})"
        for address, (code, text) in recipients.items()
    )


class FileChannel(Channel):
    """One JSON line per notification, appended to a file (``-`` = stdout)."""

    _lock = threading.Lock()

    def __init__(self, name: str, path: str):
        self.name = name
        self.path = path

    def line(self, delivery_id: str, payload: Mapping) -> str:
        return json.dumps({"delivery_id": delivery_id, **payload["message"]}, sort_keys=True, ensure_ascii=False)

    def send(self, delivery_id: str, attempt: int, payload: Mapping) -> str:
        line = self.line(delivery_id, payload) + "\n"
        try:
            with self._lock:
                if self.path == "-":
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    return "written to stdout"
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            raise EffectFailed(f"cannot append to {self.path}: {exc}") from exc
        return f"appended to {self.path}"

