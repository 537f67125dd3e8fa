"""Project: a photo uploaded and given a latent (the encoder at once, or an optimisation), then tuned when asked,
in the background; its progress and its images."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.projection import ProjectRequest
from facegen_cli.studio.state import NotFound
from facegen_cli.studio.uploads import PHOTO_LIMIT
from facegen_cli.studio.web import HEADERS, TAB, api, context, query, read_body, reply, tab_of


@api
async def start(request: Request) -> Response:
    tab, name = tab_of(request), query(request, "name", str, "photo")
    data = await read_body(request, PHOTO_LIMIT, name)
    projector = context(request).projector
    asked = ProjectRequest(query(request, "method", str, "encoder" if projector.encoder else "w"),
                           query(request, "steps", int, ProjectRequest.steps), query(request, "align", str, "ffhq"),
                           query(request, "perceptual", bool, True), query(request, "tune", bool, False),
                           query(request, "tune_steps", int, ProjectRequest.tune_steps))
    job = projector.start(tab, data, name, asked)
    return reply(job.status(tab.id))


@api
async def status(request: Request) -> Response:
    tab = tab_of(request)
    return reply(context(request).projector.job(tab, request.path_params["job"]).status(tab.id))


@api
async def image(request: Request) -> Response:
    job = context(request).projector.job(tab_of(request), request.path_params["job"])
    data = job.target if request.path_params["kind"] == "target" else job.preview
    if not data:
        raise NotFound("no image yet")
    return Response(data, media_type="image/png", headers=HEADERS)


ROUTES = [Route(f"{TAB}/project", start, methods=["POST"]), Route(f"{TAB}/project/{{job}}", status),
          Route(f"{TAB}/project/{{job}}/{{kind}}.png", image)]
