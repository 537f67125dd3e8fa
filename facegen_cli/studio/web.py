"""What every studio route shares: the app's `Context` (the studio, the quiz, the projector, the controls), request bodies
read within bounds (size, time, JSON depth), query fields, and the JSON, error and download responses.

Errors come back as JSON `{"error": "one line"}` for the page to show; a traceback only ever goes to the
server's log.
"""
from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.studio.controls import ControlPanel
from facegen_cli.studio.projection import Projector
from facegen_cli.studio.quiz import QuizMaster
from facegen_cli.studio.service import KINDS, Studio, field
from facegen_cli.studio.state import NotFound, Tab
from facegen_cli.studio.uploads import TooLarge, read_limited

JSON_LIMIT = 64 << 10  # the largest request (an average of 100 faces) is a few KiB
JSON_DEPTH = 16  # the requests nest 3 deep; Python's parser recurses once per level
BODY_TIMEOUT = 30.0  # seconds to receive a whole request body (a 20 MiB photo takes well under 1 on loopback)
JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                      "connect-src 'self' blob:; "
                                      "object-src 'none'; frame-ancestors 'none'"}
TAB = "/api/t/{tab}"  # every tab's routes start so
Endpoint = Callable[[Request], Awaitable[Response]]


class SlowBody(BadInput):
    """A request body that did not arrive in BODY_TIMEOUT seconds."""


STATUS = ((NotFound, 404), (SlowBody, 408), (TooLarge, 413), (BadInput, 400), (FacegenError, 422))


@dataclass
class Context:
    """What the routes work on; one per app, at `app.state.context`."""

    studio: Studio
    quiz: QuizMaster
    projector: Projector
    controls: ControlPanel


def context(request: Request) -> Context:
    return request.app.state.context


def tab_of(request: Request) -> Tab:
    """The tab the request's path names."""
    return context(request).studio.tabs.get(request.path_params["tab"])


def reply(data: Any) -> JSONResponse:
    """A JSON answer with the studio's headers."""
    return JSONResponse(data, headers=HEADERS)


def error_response(error: Exception) -> JSONResponse:
    status = next(code for kind, code in STATUS if isinstance(error, kind))
    close = {"Connection": "close"} if isinstance(error, SlowBody) else {}  # the rest of its body will not come
    return JSONResponse({"error": " ".join(str(error).split())}, status_code=status, headers={**HEADERS, **close})


def api(handler: Endpoint) -> Endpoint:
    """An endpoint whose FacegenError becomes a one-line JSON error with its status."""
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except FacegenError as error:
            return error_response(error)
    run.__name__ = handler.__name__
    return run


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    codes = np.frombuffer(JSON_STRING.sub(b'""', raw), np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


async def read_body(request: Request, limit: int, name: str) -> bytes:
    """The request's body, up to `limit` bytes, arriving within BODY_TIMEOUT seconds (a body shorter than its
    Content-Length would otherwise hold the connection forever)."""
    try:
        return await asyncio.wait_for(read_limited(request.stream(), request.headers.get("content-length"), limit,
                                                   name), BODY_TIMEOUT)
    except asyncio.TimeoutError:
        raise SlowBody(f"{name}: the body did not arrive within {BODY_TIMEOUT:g} s") from None


def parse_json(raw: bytes) -> dict:
    """A request body as a JSON object; anything else (too deep included) is one BadInput."""
    if json_depth(raw) > JSON_DEPTH:
        raise BadInput(f"the request body nests deeper than {JSON_DEPTH} levels")
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadInput("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object")
    return data


async def body_json(request: Request) -> dict:
    """Every JSON route's body, read and parsed within bounds (size, time, depth)."""
    return parse_json(await read_body(request, JSON_LIMIT, "request"))


def query(request: Request, name: str, kind: type, default: Any = ...) -> Any:
    """A query parameter as `kind` (`field`'s rules for a missing one), or one BadInput naming it."""
    value = request.query_params.get(name)
    if value is None:
        return field({}, name, kind, default)
    try:
        return kind(value) if kind is not bool else value in ("1", "true", "on")
    except ValueError:
        raise BadInput(f"{name}={value!r} is not {KINDS[kind]}") from None


def download(data: bytes, media: str, name: str) -> Response:
    """`data` as an attachment named `name`."""
    disposition = f'attachment; filename="{name}"'
    return Response(data, media_type=media, headers={**HEADERS, "Content-Disposition": disposition})
