"""The OpenAPI document in docs/ is the service's own, and a valid one."""

from __future__ import annotations

from pathlib import Path

from openapi_spec_validator import validate

from ledger.service.app import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_matches_the_service():
    assert DOC.read_text() == openapi_document(), (
        "docs/openapi.json is stale: python -m ledger.service.app > docs/openapi.json"
    )


def test_the_document_is_valid_openapi():
    import json

    validate(json.loads(DOC.read_text()))
