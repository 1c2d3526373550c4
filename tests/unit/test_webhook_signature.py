"""Webhook signing as a receiver checks it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from consumers.channels import WebhookChannel, signature, verify_signature, webhook_body

SECRET = "whsec-test"
MESSAGE = {"event_id": "e1", "event_type": "ModelDeployed", "model": "churn", "version": 3, "summary": "déployé"}


def signed_request(secret=SECRET, at=1_700_000_000):
    channel = WebhookChannel("ops", "https://hooks.example.com/x", secret, clock=lambda: at)
    request = channel.request("d-123", 1, MESSAGE)
    return {k: v for k, v in request.header_items()}, request.data


# The exact bytes a receiver gets (compact JSON, keys sorted, UTF-8), and their
# signature as computed outside Python, by OpenSSL:
#   printf '%s' 'd-123.1700000000.{"event_id":"e1",…,"version":3}' \
#     | openssl dgst -sha256 -hmac whsec-test
BODY = '{"event_id":"e1","event_type":"ModelDeployed","model":"churn","summary":"déployé","version":3}'.encode()
OPENSSL_SIGNATURE = "sha256=1c7f8b80c329e7ddc89579d773d507702f3bad320aed45e53c73580ed53aad32"


def test_the_signature_is_hmac_sha256_of_delivery_timestamp_and_raw_body():
    headers, body = signed_request()
    assert body == BODY
    assert headers["X-ledger-signature"] == OPENSSL_SIGNATURE
    assert headers["X-ledger-timestamp"] == "1700000000"
    assert headers["X-ledger-delivery"] == headers["Idempotency-key"] == "d-123"
    # The same recipe with the standard library, as a receiver in Python would write it.
    expected = hmac.new(SECRET.encode(), b"d-123.1700000000." + BODY, hashlib.sha256).hexdigest()
    assert OPENSSL_SIGNATURE == f"sha256={expected}"
    assert webhook_body(MESSAGE) == BODY


def test_a_receiver_accepts_the_genuine_request():
    headers, body = signed_request()
    assert verify_signature(SECRET, headers, body, now=1_700_000_010)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"churn", b"fraud")),
        lambda h, b: ({**h, "X-ledger-timestamp": "1700000001"}, b),
        lambda h, b: ({**h, "X-ledger-delivery": "d-124"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "X-ledger-signature"}, b),
        lambda h, b: ({**h, "X-ledger-timestamp": "yesterday"}, b),
    ],
    ids=["body", "timestamp", "delivery", "no-signature", "bad-timestamp"],
)
def test_a_receiver_refuses_an_altered_request(tamper):
    headers, body = tamper(*signed_request())
    assert not verify_signature(SECRET, headers, body, now=1_700_000_010)


def test_a_receiver_refuses_another_secret_and_a_stale_replay():
    headers, body = signed_request()
    assert not verify_signature("other", headers, body, now=1_700_000_010)
    assert not verify_signature(SECRET, headers, body, now=1_700_000_000 + 301)


def test_without_a_secret_nothing_is_signed():
    headers, _ = signed_request(secret=None)
    assert "X-ledger-signature" not in headers


def test_signature_helper_matches_the_request():
    headers, body = signed_request()
    assert signature(SECRET, "d-123", 1_700_000_000, body) == headers["X-ledger-signature"]


def test_the_receiver_snippet_in_the_docs_verifies_a_real_request():
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text()
    section = doc.split("### Verifying a webhook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the documentation's own example
    now = int(time.time())
    channel = WebhookChannel("ops", "https://hooks.example.com/x", SECRET, clock=lambda: now)
    request = channel.request("d-9", 1, MESSAGE)
    headers = {"X-Ledger-Delivery": "d-9", "X-Ledger-Timestamp": str(now),
               "X-Ledger-Signature": request.get_header("X-ledger-signature")}
    assert namespace["verify"](SECRET, headers, request.data)
    assert not namespace["verify"](SECRET, headers, request.data + b" ")
