"""Real local receivers for notification tests: an HTTP server and an SMTP server.

    with HttpReceiver(script=[500, 500, 200]) as hook, SmtpReceiver() as smtp:
        ... hook.url, smtp.host, smtp.port ...
        hook.requests   # every request received: path, headers, body
        smtp.messages   # every e-mail received: envelope and parsed message

Both listen on 127.0.0.1 with a port the OS picks, in a thread of the test process.
With ``tls=`` (a :class:`Certificates`) they speak TLS: HTTPS, SMTP with STARTTLS
or SMTP over implicit TLS (SMTPS); ``logins=`` makes the SMTP server require AUTH.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    """The status the receiver answered."""

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Certificates:
    """A certificate authority made for the test (trustme) and a server
    certificate it issued for 127.0.0.1 and localhost. ``ca_file`` is what a
    client is told to trust."""

    def __init__(self, directory):
        import trustme

        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(directory / "test-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        return context


class HttpReceiver:
    """Answers each POST with the next status of ``script`` (the last one repeats)."""

    def __init__(self, script: list[int] | None = None, *, retry_after: str | None = None, tls: Certificates | None = None):
        self.script = list(script or [200])
        self.retry_after = retry_after
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    index = min(len(receiver.requests), len(receiver.script) - 1)
                    status = receiver.script[index]
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, status))
                self.send_response(status)
                if receiver.retry_after and status in (429, 503):
                    self.send_header("Retry-After", receiver.retry_after)
                answer = b"ok" if status < 300 else f"refused with {status}".encode()
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.tls = tls
        if tls is not None:
            self.server.socket = tls.server_context().wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}/hooks/ledger"

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage


class SmtpReceiver:
    """A real SMTP server (aiosmtpd). ``refuse`` maps recipient → SMTP reply
    (e.g. ``"550 no such user"``) to refuse that recipient."""

    def __init__(
        self,
        refuse: dict[str, str] | None = None,
        *,
        tls: Certificates | None = None,
        mode: str = "starttls",
        logins: dict[str, str] | None = None,
    ):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[Mail] = []
        self.logins_tried: list[str] = []
        self.refuse = dict(refuse or {})
        receiver = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                if address in receiver.refuse:
                    return receiver.refuse[address]
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                message = message_from_bytes(envelope.content, policy=policy.default)
                receiver.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            user = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
            password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
            receiver.logins_tried.append(user)
            # handled=False: aiosmtpd answers the refusal (535) itself.
            return AuthResult(success=(logins or {}).get(user) == password, handled=False)

        options: dict = {}
        if tls is not None and mode == "starttls":
            options.update(tls_context=tls.server_context(), require_starttls=True)
        elif tls is not None:
            # aiosmtpd only counts STARTTLS as TLS for AUTH; with implicit TLS the
            # whole connection is encrypted before the first SMTP line.
            options.update(ssl_context=tls.server_context(), auth_require_tls=False)
        if logins is not None:
            # AUTH only over TLS (aiosmtpd's default), and mail only after AUTH.
            options.update(authenticator=authenticator, auth_required=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.controller = Controller(Handler(), hostname=self.host, port=self.port, **options)

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
