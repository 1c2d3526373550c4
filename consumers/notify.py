"""The notification consumer: on approve, reject, deploy, drift, degradation and retire, one
delivery per configured channel (webhook, e-mail, file/stdout), each delivered
once, retried with backoff, and dead-lettered with its reason when it cannot be.

Configuration comes from ``--config FILE`` (TOML, or ``LEDGER_NOTIFY_CONFIG``),
else from environment variables; ``docs/notifications.md`` documents both.
"""

from __future__ import annotations

import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from consumers import notify_policy
from consumers.channels import Channel, EmailChannel, FileChannel, WebhookChannel, tls_context
from consumers.runner import (
    Consumer,
    ConsumerOptions,
    Effect,
    EffectFailed,
    Intent,
    RetryPolicy,
)
from ledger import faults
from ledger.errors import InputError
from ledger.files import read_toml
from ledger.parsing import validation_message
from ledger.events import BY_CLI_NAME, BY_TYPE, Event

NAME = "notify"

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token

ChannelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")]


def _event_type(name: str) -> str:
    cls = BY_CLI_NAME.get(name) or BY_TYPE.get(name)
    if cls is None:
        known = ", ".join(BY_CLI_NAME)
        raise ValueError(f"unknown event type {name!r}; use one of: {known} (or their event type names)")
    return cls.event_type


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _ChannelSettings(_Settings):
    events: tuple[str, ...] | None = None
    """Event types this channel wants (default: the consumer-wide ``events``)."""

    @field_validator("events")
    @classmethod
    def _known_events(cls, value):
        return None if value is None else tuple(_event_type(v) for v in value)


def _secret(value: str | None, env_name: str | None, env: Mapping[str, str], what: str) -> str | None:
    if value is not None and env_name is not None:
        raise InputError(f"{what}: give the secret or the name of its environment variable, not both")
    if env_name is None:
        return value
    if env_name not in env:
        raise InputError(f"{what}: environment variable {env_name} is not set")
    return env[env_name]


def _readable_ca_file(value: str | None) -> str | None:
    # A CA file that cannot be loaded would fail every delivery at send time.
    if value is not None:
        try:
            tls_context(value)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the CA certificates in {value!r}: {exc}") from None
    return value


def _looks_like_address(value: str) -> bool:
    # A line break would be refused at send time (it would start another header),
    # so every delivery would be retried until dead. "Name <a@b>" stays allowed.
    return "@" in value and not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


class WebhookSettings(_ChannelSettings):
    name: ChannelName = "webhook"
    url: str
    secret: str | None = None
    secret_env: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    ca_file: str | None = None
    """PEM file of the CAs trusted for an https URL (default: the system's)."""

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        return _readable_ca_file(value)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # Whatever http.client would refuse at send time is refused here: a URL no
        # request can carry would otherwise be retried until its deliveries are dead.
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise ValueError(f"webhook url contains a space or control character: {url!r}")
        if not url.isascii():
            raise ValueError(f"webhook url must be ASCII (percent-encode the path, punycode the host): {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url must be http(s)://HOST/…, got {url!r}")
        try:
            _ = parts.port  # urllib parses the port lazily, and raises here
        except ValueError:
            raise ValueError(f"webhook url has a bad port (a number 1-65535): {url!r}") from None
        return url

    @field_validator("headers")
    @classmethod
    def _legal_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a legal HTTP header name")
            if any(ch in value for ch in "\r\n\x00"):
                raise ValueError(f"header {name!r} has a line break or NUL in its value")
        return headers

    def channel(self, env: Mapping[str, str], clock: Callable[[], float]) -> Channel:
        secret = _secret(self.secret, self.secret_env, env, f"webhook {self.name!r}")
        return WebhookChannel(
            self.name, self.url, secret, timeout=self.timeout, headers=self.headers, clock=clock, ca_file=self.ca_file
        )


class EmailSettings(_ChannelSettings):
    name: ChannelName = "email"
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(alias="from", min_length=3)
    to: tuple[str, ...] = Field(min_length=1)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    ca_file: str | None = None
    """PEM file of the CAs trusted for STARTTLS or SMTPS (default: the system's)."""

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        return _readable_ca_file(value)

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _looks_like_address(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _looks_like_address(v)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value

    @model_validator(mode="after")
    def _tls(self):
        if self.ssl and self.starttls:
            raise ValueError("choose ssl (SMTPS) or starttls, not both")
        return self

    def channel(self, env: Mapping[str, str], clock: Callable[[], float]) -> Channel:
        password = _secret(self.password, self.password_env, env, f"email {self.name!r}")
        return EmailChannel(
            self.name,
            self.host,
            self.port,
            self.sender,
            self.to,
            starttls=self.starttls,
            use_ssl=self.ssl,
            username=self.username,
            password=password,
            timeout=self.timeout,
            ca_file=self.ca_file,
        )


class FileSettings(_ChannelSettings):
    name: ChannelName = "file"
    path: str = Field(min_length=1)
    """A file to append JSON lines to, or ``-`` for stdout."""

    def channel(self, env: Mapping[str, str], clock: Callable[[], float]) -> Channel:
        return FileChannel(self.name, self.path)


class RetrySettings(_Settings):
    max_attempts: int = Field(default=5, ge=1, le=100)
    base_delay: float = Field(default=2.0, ge=0)
    max_delay: float = Field(default=300.0, ge=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    lease: float = Field(default=300.0, gt=0, le=86_400)
    """Seconds a delivery may stay "sending" before it is presumed lost with its
    process (killed between the send and its record) and sent again, same id."""

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.base_delay, self.max_delay, self.jitter)


class NotifyConfig(_Settings):
    events: tuple[str, ...] = notify_policy.DEFAULT_EVENTS
    retry: RetrySettings = RetrySettings()
    webhook: tuple[WebhookSettings, ...] = ()
    email: tuple[EmailSettings, ...] = ()
    file: tuple[FileSettings, ...] = ()

    @field_validator("events")
    @classmethod
    def _known_events(cls, value):
        return tuple(_event_type(v) for v in value)

    @model_validator(mode="after")
    def _unique_names(self):
        names = [c.name for c in self.channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"channel names must be unique; give each a distinct name: {duplicates}")
        return self

    @property
    def channels(self) -> list[WebhookSettings | EmailSettings | FileSettings]:
        return [*self.webhook, *self.email, *self.file]

    def routes(self) -> list[notify_policy.Route]:
        return [
            notify_policy.Route(c.name, None if c.events is None else frozenset(c.events)) for c in self.channels
        ]

    # -- loading ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Mapping, source: str) -> NotifyConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = validation_message(exc, "config")
            raise InputError(f"bad notification configuration in {source}: {problems}") from exc

    @classmethod
    def from_file(cls, path: Path) -> NotifyConfig:
        return cls.parse(read_toml(path, "notification configuration"), str(path))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifyConfig:
        data: dict = {}

        def get(key: str) -> str | None:
            value = env.get(f"LEDGER_NOTIFY_{key}")
            return value if value not in (None, "") else None

        if get("EVENTS"):
            data["events"] = [v.strip() for v in get("EVENTS").split(",") if v.strip()]
        retry = {
            field: get(key)
            for field, key in (
                ("max_attempts", "MAX_ATTEMPTS"),
                ("base_delay", "BACKOFF"),
                ("max_delay", "MAX_BACKOFF"),
                ("jitter", "JITTER"),
                ("lease", "LEASE"),
            )
            if get(key) is not None
        }
        if retry:
            data["retry"] = retry
        if get("WEBHOOK_URL"):
            data["webhook"] = [{"url": get("WEBHOOK_URL"), "secret": get("WEBHOOK_SECRET")}]
        elif get("WEBHOOK_SECRET"):
            raise InputError("LEDGER_NOTIFY_WEBHOOK_SECRET is set but LEDGER_NOTIFY_WEBHOOK_URL is not")
        email_keys = ("SMTP", "EMAIL_FROM", "EMAIL_TO")
        if any(get(k) for k in email_keys):
            missing = [f"LEDGER_NOTIFY_{k}" for k in email_keys if not get(k)]
            if missing:
                raise InputError(f"e-mail notifications need {', '.join(missing)} as well")
            host, _, port = get("SMTP").rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"LEDGER_NOTIFY_SMTP must be HOST:PORT, got {get('SMTP')!r}")
            email = {"host": host, "port": int(port), "from": get("EMAIL_FROM"), "to": get("EMAIL_TO")}
            tls = (get("SMTP_TLS") or "").lower()
            if tls not in ("", "starttls", "ssl", "none"):
                raise InputError(f"LEDGER_NOTIFY_SMTP_TLS is starttls, ssl or none, got {tls!r}")
            email["starttls"] = tls == "starttls"
            email["ssl"] = tls == "ssl"
            if get("SMTP_USER"):
                email["username"] = get("SMTP_USER")
                email["password"] = get("SMTP_PASSWORD")
            data["email"] = [email]
        if get("FILE"):
            data["file"] = [{"path": get("FILE")}]
        return cls.parse(data, "the LEDGER_NOTIFY_* environment variables")

    @classmethod
    def load(cls, path: Path | None, env: Mapping[str, str]) -> NotifyConfig:
        """``path``, else ``LEDGER_NOTIFY_CONFIG``, else the environment variables.
        No channel at all is an error: a notifier that notifies no one is a mistake."""
        path = path or (Path(env["LEDGER_NOTIFY_CONFIG"]) if env.get("LEDGER_NOTIFY_CONFIG") else None)
        config = cls.from_file(path) if path else cls.from_env(env)
        if not config.channels:
            raise InputError(
                "no notification channel configured: pass --config FILE (TOML with [[webhook]], "
                "[[email]] or [[file]] tables) or set LEDGER_NOTIFY_WEBHOOK_URL, LEDGER_NOTIFY_SMTP "
                "(with LEDGER_NOTIFY_EMAIL_FROM/_TO) or LEDGER_NOTIFY_FILE; see docs/notifications.md"
            )
        return config


class NotifyConsumer(Consumer):
    name = NAME

    def __init__(
        self,
        config: NotifyConfig,
        env: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        env = dict(os.environ) if env is None else env
        self.config = config
        self.retry = config.retry.policy()
        self.lease_seconds = config.retry.lease
        self.channels: dict[str, Channel] = {c.name: c.channel(env, clock) for c in config.channels}
        self._events = frozenset(config.events)
        self._routes = config.routes()

    def policy(self, event: Event) -> list[Intent]:
        return notify_policy.policy(event, self._events, self._routes)

    def perform(self, effect: Effect) -> str | None:
        channel = self.channels.get(effect.channel)
        if channel is None:
            raise EffectFailed(
                f"channel {effect.channel!r} is no longer configured (configured: {', '.join(self.channels)})",
                permanent=True,
            )
        outcome = channel.send(effect.id, effect.attempts, effect.payload)
        faults.reached("notify-after-send")  # tests only: sent, not yet recorded
        return outcome

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


def build(options: ConsumerOptions) -> NotifyConsumer:
    """The factory ``ledger consume notify`` calls."""
    return NotifyConsumer(NotifyConfig.load(options.config_path, options.env), options.env)
