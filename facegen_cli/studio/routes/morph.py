"""Morph: a morph through the chosen faces, written as MP4 and GIF, and those files."""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.state import NotFound
from facegen_cli.studio.web import TAB, api, body_json, context, download, reply, tab_of


@api
async def morph(request: Request) -> Response:
    tab = tab_of(request)
    return reply(await run_in_threadpool(context(request).studio.morph, tab, await body_json(request)))


@api
async def morph_file(request: Request) -> Response:
    tab, name = tab_of(request), f"{request.path_params['file']}.{request.path_params['kind']}"
    path = tab.files.get(name)
    if path is None or not path.exists():
        raise NotFound(f"this tab has no morph {name!r}; make it again")
    media = "video/mp4" if name.endswith(".mp4") else "image/gif"
    return download(path.read_bytes(), media, f"morph.{request.path_params['kind']}")


ROUTES = [Route(f"{TAB}/morph", morph, methods=["POST"]), Route(f"{TAB}/morph/{{file}}.{{kind}}", morph_file)]
