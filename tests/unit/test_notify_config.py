"""Notification configuration from TOML and environment variables."""

from __future__ import annotations

import pytest

from consumers.channels import EmailChannel, FileChannel, WebhookChannel
from consumers.notify import NotifyConfig, NotifyConsumer
from ledger.errors import InputError

TOML = """
events = ["deploy", "DriftDetected"]

[retry]
max_attempts = 4
base_delay = 0.5

[[webhook]]
name = "ops"
url = "https://hooks.example.com/ledger"
secret_env = "OPS_SECRET"

[[email]]
host = "smtp.example.com"
port = 587
starttls = true
username = "ledger"
password_env = "SMTP_PASSWORD"
from = "ledger@example.com"
to = ["ml-oncall@example.com"]
events = ["drift"]

[[file]]
path = "-"
"""


def test_a_toml_file_configures_every_channel(tmp_path):
    path = tmp_path / "notify.toml"
    path.write_text(TOML)
    config = NotifyConfig.load(path, {})
    assert config.events == ("ModelDeployed", "DriftDetected")
    assert [c.name for c in config.channels] == ["ops", "email", "file"]
    assert config.retry.policy().max_attempts == 4
    consumer = NotifyConsumer(config, {"OPS_SECRET": "s", "SMTP_PASSWORD": "p"})
    ops, mail, out = consumer.channels["ops"], consumer.channels["email"], consumer.channels["file"]
    assert isinstance(ops, WebhookChannel) and ops.secret == "s"
    assert isinstance(mail, EmailChannel) and mail.starttls and mail.password == "p" and mail.port == 587
    assert isinstance(out, FileChannel) and out.path == "-"
    assert [r.events for r in config.routes()] == [None, frozenset({"DriftDetected"}), None]


def test_the_environment_configures_one_channel_of_each_kind():
    env = {
        "LEDGER_NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/x",
        "LEDGER_NOTIFY_WEBHOOK_SECRET": "s",
        "LEDGER_NOTIFY_SMTP": "mail.local:2525",
        "LEDGER_NOTIFY_SMTP_TLS": "starttls",
        "LEDGER_NOTIFY_EMAIL_FROM": "ledger@example.com",
        "LEDGER_NOTIFY_EMAIL_TO": "a@example.com, b@example.com",
        "LEDGER_NOTIFY_FILE": "/tmp/x.jsonl",
        "LEDGER_NOTIFY_EVENTS": "approve,reject",
        "LEDGER_NOTIFY_MAX_ATTEMPTS": "7",
    }
    config = NotifyConfig.load(None, env)
    assert config.events == ("ModelApproved", "ApprovalRejected")
    (hook,), (mail,), (out,) = config.webhook, config.email, config.file
    assert hook.secret == "s" and mail.host == "mail.local" and mail.port == 2525 and mail.starttls
    assert mail.to == ("a@example.com", "b@example.com") and out.path == "/tmp/x.jsonl"
    assert config.retry.max_attempts == 7


def test_the_config_file_can_be_named_by_the_environment(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text("[[file]]\npath = '-'\n")
    assert NotifyConfig.load(None, {"LEDGER_NOTIFY_CONFIG": str(path)}).file[0].path == "-"


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "no notification channel configured"),
        ({"LEDGER_NOTIFY_SMTP": "mail:25"}, "LEDGER_NOTIFY_EMAIL_FROM, LEDGER_NOTIFY_EMAIL_TO"),
        ({"LEDGER_NOTIFY_SMTP": "mail", "LEDGER_NOTIFY_EMAIL_FROM": "a@b", "LEDGER_NOTIFY_EMAIL_TO": "c@d"}, "HOST:PORT"),
        ({"LEDGER_NOTIFY_WEBHOOK_SECRET": "s"}, "LEDGER_NOTIFY_WEBHOOK_URL is not"),
        ({"LEDGER_NOTIFY_FILE": "-", "LEDGER_NOTIFY_MAX_ATTEMPTS": "many"}, "retry.max_attempts"),
        ({"LEDGER_NOTIFY_FILE": "-", "LEDGER_NOTIFY_EVENTS": "deploy,promote"}, "unknown event type 'promote'"),
        (
            {"LEDGER_NOTIFY_SMTP": "m:25", "LEDGER_NOTIFY_EMAIL_FROM": "a@b", "LEDGER_NOTIFY_EMAIL_TO": "c@d", "LEDGER_NOTIFY_SMTP_TLS": "maybe"},
            "starttls, ssl or none",
        ),
    ],
)
def test_bad_environment_is_an_input_error_that_says_what_to_fix(env, message):
    with pytest.raises(InputError, match=message):
        NotifyConfig.load(None, env)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"webhook": [{"url": "https://x", "colour": "red"}]}, "webhook.0.colour"),
        ({"email": [{"host": "h", "from": "not-an-address", "to": ["a@b"]}]}, "not an e-mail address"),
        ({"email": [{"host": "h", "from": "a@b", "to": ["a@b"], "ssl": True, "starttls": True}]}, "not both"),
        ({"file": [{"path": "-", "name": "bad name!"}]}, "file.0.name"),
        ({"webhook": [{"url": "https://x", "secret": "a", "secret_env": "B"}]}, "not both"),
        # URLs and headers no request could carry: refused now, not retried until dead.
        ({"webhook": [{"url": "http://hooks.example .com/x"}]}, "webhook.0.url: .*space or control"),
        ({"webhook": [{"url": "http://hooks.example.com/a\x00b"}]}, "webhook.0.url: .*space or control"),
        ({"webhook": [{"url": "http://hooks.example.com:80a/x"}]}, "webhook.0.url: .*port"),
        ({"webhook": [{"url": "http://hooks.example.com:99999/x"}]}, "webhook.0.url: .*port"),
        ({"webhook": [{"url": "http://[::1/x"}]}, "webhook.0.url"),
        ({"webhook": [{"url": "https://hooks.example.com/h\u00f6ok"}]}, "webhook.0.url: .*percent-encode"),
        ({"webhook": [{"url": "https://x", "headers": {"X-Team": "a\r\nX-Evil: 1"}}]}, "webhook.0.headers"),
        ({"webhook": [{"url": "https://x", "headers": {"X Team": "a"}}]}, "webhook.0.headers"),
        ({"email": [{"host": "h", "from": "a@b\r\nBcc: eve@x", "to": ["a@b"]}]}, "email.0.from"),
        ({"email": [{"host": "h", "from": "a@b", "to": ["a@b", "c@d\nBcc: e@f"]}]}, "email.0.to"),
    ],
)
def test_bad_settings_are_refused_with_where_and_why(data, message):
    with pytest.raises(InputError, match=message):
        NotifyConsumer(NotifyConfig.parse(data, "test"), {})


def test_a_configuration_file_that_is_not_text_is_an_input_error(tmp_path):
    path = tmp_path / "notify.toml"
    path.write_bytes(b"\xb6\x00\xff binary")
    with pytest.raises(InputError, match="notify.toml"):
        NotifyConfig.load(path, {})


@pytest.mark.parametrize("kind", ["webhook", "email"])
def test_a_ca_file_is_loaded_when_the_configuration_is_read(tmp_path, kind):
    import trustme

    good = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(good))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    base = (
        {"url": "https://hooks.example.com/x"}
        if kind == "webhook"
        else {"host": "smtp.example.com", "from": "ledger@example.com", "to": ["ops@example.com"], "ssl": True}
    )
    config = NotifyConfig.parse({kind: [{**base, "ca_file": str(good)}]}, "test")
    (channel,) = NotifyConsumer(config, {}).channels.values()
    assert isinstance(channel, WebhookChannel | EmailChannel)
    for bad in (garbage, tmp_path / "missing.pem"):
        with pytest.raises(InputError, match=f"{kind}.0.ca_file.*cannot load the CA certificates"):
            NotifyConfig.parse({kind: [{**base, "ca_file": str(bad)}]}, "test")
