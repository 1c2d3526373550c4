"""The floor under the ledger service's cost per request, for ``bench/serve.py
--parts ceiling``: the same ASGI stack (Starlette on uvicorn, uvloop + httptools, no
access log) answering ``POST /v1/events`` by reading the body, parsing it as JSON
and answering 201 with a small JSON body — no authentication, no rules, no log.

    python -m uvicorn bench.bare_app:app --loop uvloop --http httptools --no-access-log --port 8000
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def events(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    return JSONResponse({"event_id": body.get("event_id"), "duplicate": False}, status_code=201)


app = Starlette(routes=[Route("/v1/events", events, methods=["POST"])])
