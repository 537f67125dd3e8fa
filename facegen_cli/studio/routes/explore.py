"""Explore: pages of seeds, a seed opened as a face, a latent uploaded as a face, and the tab's face list."""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.service import Look, field
from facegen_cli.studio.uploads import LATENT_LIMIT
from facegen_cli.studio.web import HEADERS, TAB, api, body_json, context, query, read_body, reply, tab_of


@api
async def explore(request: Request) -> Response:
    tab, seq = tab_of(request), query(request, "seq", int, None)
    if seq is not None:
        tab.claim("explore", seq)
    args = (tab, seq, query(request, "start", int, 0), query(request, "count", int, 12),
            Look.read(lambda *a: query(request, *a)))
    page = await run_in_threadpool(context(request).studio.explore, *args)
    if page is None:
        return Response(status_code=204, headers={**HEADERS, "X-Stale": "1"})
    return reply({"faces": page})


@api
async def faces(request: Request) -> Response:
    tab = tab_of(request)
    if request.method == "POST":
        p = await body_json(request)
        face = await run_in_threadpool(context(request).studio.open_seed, tab, field(p, "seed", int),
                                       Look.read(lambda *a: field(p, *a)))
        return reply(face.summary(tab.id))
    return reply({"faces": [f.summary(tab.id) for f in tab.face_list()]})


@api
async def upload(request: Request) -> Response:
    tab, name = tab_of(request), query(request, "name", str, "latent.npy")
    data = await read_body(request, LATENT_LIMIT, name)
    face = await run_in_threadpool(context(request).studio.upload_latent, tab, data, name)
    return reply(face.summary(tab.id))


ROUTES = [Route(f"{TAB}/explore", explore), Route(f"{TAB}/faces", faces, methods=["GET", "POST"]),
          Route(f"{TAB}/faces/upload", upload, methods=["POST"])]
