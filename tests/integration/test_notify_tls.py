"""Notifications over real TLS on loopback, with certificates the test makes: HTTPS
webhooks, SMTP with STARTTLS and over implicit TLS (SMTPS), with login. A
certificate the channel does not trust, or a refused login, ends the delivery at
once (no retry can help) as a dead delivery and a dead letter naming the reason."""

from __future__ import annotations

import time

import pytest
from receivers import Certificates, HttpReceiver, SmtpReceiver

from consumers import store as consumer_store
from consumers.channels import verify_signature
from consumers.notify import NotifyConfig, NotifyConsumer
from consumers.runner import Runner
from ledger import samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS: see receivers.py

SECRET = "tls-secret"
FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05, "jitter": 0.1}
LOGINS = {"ledger": "correct horse"}


@pytest.fixture
def certs(tmp_path):
    return Certificates(tmp_path)


@pytest.fixture
def other_ca(tmp_path):
    """A CA that did not issue the receivers' certificates."""
    (tmp_path / "other").mkdir()
    return Certificates(tmp_path / "other").ca_file


@pytest.fixture
def deployed(tmp_path):
    """An embedded log with one deployment (one notification per channel)."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with Ledger.open(url) as ledger:
        for draft in samples.lifecycle("churn"):
            ledger.emit(draft)
    return url


@pytest.fixture
def db(tmp_path):
    yield f"sqlite:///{tmp_path / 'state.db'}"
    consumer_store.dispose_engines()


def run(log_url, db_url, channels: dict):
    cfg = NotifyConfig.parse({"retry": FAST_RETRY, "events": ["deploy"], **channels}, "test")
    consumer = NotifyConsumer(cfg, {})
    with open_log(log_url) as event_log:
        runner = Runner(consumer, event_log, db_url)
        try:
            return runner.run_once(max_wait=10.0)
        finally:
            runner.close()


def outcome(db_url):
    store = consumer_store.Store(consumer_store.engine_for(db_url), "notify")
    (row,) = store.list_effects()
    letters = store.list_dead_letters()
    return row, letters


# --- HTTPS webhooks ----------------------------------------------------------------


def test_https_webhook_trusting_the_test_ca_is_delivered_and_signed(deployed, db, certs):
    with HttpReceiver(tls=certs) as hook:
        report = run(deployed, db, {"webhook": [{"url": hook.url, "secret": SECRET, "ca_file": certs.ca_file}]})
    assert hook.url.startswith("https://")
    assert report.delivered == 1
    (request,) = hook.requests
    assert request.json["event_type"] == "ModelDeployed"
    assert verify_signature(SECRET, request.headers, request.body, now=time.time())
    row, letters = outcome(db)
    assert (row["status"], letters) == ("delivered", [])


@pytest.mark.parametrize("trust", ["system", "another-ca"])
def test_https_webhook_with_an_untrusted_certificate_is_dead_at_once(deployed, db, certs, other_ca, trust):
    setting = {} if trust == "system" else {"ca_file": other_ca}
    with HttpReceiver(tls=certs) as hook:
        report = run(deployed, db, {"webhook": [{"url": hook.url, **setting}]})
    assert hook.requests == []  # the TLS handshake failed: nothing was posted
    assert report.dead_effects == 1
    row, letters = outcome(db)
    assert row["status"] == "dead" and row["attempts"] == 1
    assert "TLS certificate refused" in row["last_error"] and "certificate verify failed" in row["last_error"]
    assert [letter["effect_id"] for letter in letters] == [row["id"]]
    assert "TLS certificate refused" in letters[0]["reason"]


# --- SMTP: STARTTLS and implicit TLS, with login ------------------------------------


def email(smtp, **extra):
    return {"email": [{"host": smtp.host, "port": smtp.port, "from": "ledger@example.com", "to": ["ops@example.com"], **extra}]}


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_mail_over_tls_with_login_is_delivered(deployed, db, certs, mode):
    with SmtpReceiver(tls=certs, mode=mode, logins=LOGINS) as smtp:
        report = run(
            deployed, db,
            email(smtp, **{mode: True, "username": "ledger", "password": "correct horse", "ca_file": certs.ca_file}),
        )
    assert report.delivered == 1, outcome(db)
    (mail,) = smtp.messages
    assert mail.recipients == ["ops@example.com"]
    assert "ModelDeployed" in mail.message.get_content()
    assert set(smtp.logins_tried) == {"ledger"}  # smtplib tries PLAIN, then LOGIN


@pytest.mark.parametrize("trust", ["system", "another-ca"])
@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_mail_to_a_server_with_an_untrusted_certificate_is_dead_at_once(deployed, db, certs, other_ca, mode, trust):
    setting = {} if trust == "system" else {"ca_file": other_ca}
    with SmtpReceiver(tls=certs, mode=mode, logins=LOGINS) as smtp:
        report = run(
            deployed, db,
            email(smtp, **{mode: True, "username": "ledger", "password": "correct horse", **setting}),
        )
    assert smtp.messages == [] and smtp.logins_tried == []  # the password never left
    assert report.dead_effects == 1
    row, letters = outcome(db)
    assert row["status"] == "dead" and row["attempts"] == 1, row
    assert "TLS certificate refused" in row["last_error"] and "certificate verify failed" in row["last_error"]
    assert [letter["effect_id"] for letter in letters] == [row["id"]]


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_a_refused_login_is_dead_at_once(deployed, db, certs, mode):
    with SmtpReceiver(tls=certs, mode=mode, logins=LOGINS) as smtp:
        report = run(
            deployed, db,
            email(smtp, **{mode: True, "username": "ledger", "password": "wrong", "ca_file": certs.ca_file}),
        )
    assert smtp.messages == [] and set(smtp.logins_tried) == {"ledger"}  # smtplib tries PLAIN, then LOGIN
    assert report.dead_effects == 1
    row, letters = outcome(db)
    assert row["status"] == "dead" and row["attempts"] == 1, row
    assert "535" in row["last_error"]
    assert [letter["effect_id"] for letter in letters] == [row["id"]]


def test_mail_without_login_to_a_server_that_requires_it_is_dead_at_once(deployed, db, certs):
    with SmtpReceiver(tls=certs, mode="starttls", logins=LOGINS) as smtp:
        report = run(deployed, db, email(smtp, starttls=True, ca_file=certs.ca_file))
    assert smtp.messages == []
    assert report.dead_effects == 1
    row, _ = outcome(db)
    assert row["attempts"] == 1 and "530" in row["last_error"], row


def test_a_ca_file_that_does_not_exist_is_refused_when_the_configuration_is_read(tmp_path):
    with pytest.raises(InputError, match="ca_file"):
        NotifyConfig.parse({"webhook": [{"url": "https://example.com/h", "ca_file": str(tmp_path / "nope.pem")}]}, "test")
