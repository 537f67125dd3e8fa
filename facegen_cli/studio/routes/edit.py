"""Edit, mix and average: the live image of a slider or layer choice (stale requests skipped), keeping what it
shows as a new face, and the tab's render counts; Edit's controls: a face's readings, and the face set to values."""
from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.service import field
from facegen_cli.studio.web import HEADERS, TAB, api, body_json, context, reply, tab_of


@api
async def live(request: Request) -> Response:
    tab, channel = tab_of(request), request.path_params["channel"]
    payload = await body_json(request)
    seq = field(payload, "seq", int)
    tab.claim(channel, seq)
    started = time.perf_counter()
    image = await run_in_threadpool(context(request).studio.live, tab, payload, channel, seq)
    if image is None:
        return Response(status_code=204, headers={**HEADERS, "X-Stale": "1"})
    took = f"{(time.perf_counter() - started) * 1000:.1f}"  # waiting for the network's lock included
    return Response(image, media_type="image/png", headers={**HEADERS, "X-Seq": str(seq), "X-Server-Ms": took})


@api
async def keep(request: Request) -> Response:
    tab = tab_of(request)
    face = await run_in_threadpool(context(request).studio.keep, tab, await body_json(request))
    return reply(face.summary(tab.id))


@api
async def reading(request: Request) -> Response:
    face = tab_of(request).face(request.path_params["face"])
    return reply(await run_in_threadpool(context(request).controls.reading, face))


@api
async def controls(request: Request) -> Response:
    tab, payload = tab_of(request), await body_json(request)
    seq = field(payload, "seq", int, None)
    if seq is not None:
        tab.claim("controls", seq)
    answer = await run_in_threadpool(context(request).controls.set, tab, payload, seq)
    if answer is None:
        return Response(status_code=204, headers={**HEADERS, "X-Stale": "1"})
    return reply(answer)


@api
async def stats(request: Request) -> Response:
    tab = tab_of(request)
    return reply({"renders": tab.renders, "dropped": tab.dropped})


ROUTES = [Route(f"{TAB}/live/{{channel}}", live, methods=["POST"]), Route(f"{TAB}/keep", keep, methods=["POST"]),
          Route(f"{TAB}/stats", stats), Route(f"{TAB}/faces/{{face}}/reading", reading),
          Route(f"{TAB}/controls", controls, methods=["POST"])]
