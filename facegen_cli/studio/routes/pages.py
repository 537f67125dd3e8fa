"""The page itself, its static files (read once into memory and looked up by name, so no request path ever
reaches the file system) and what the page needs to know about the network."""
from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.projection import request_defaults
from facegen_cli.studio.uploads import LATENT_LIMIT, PHOTO_LIMIT
from facegen_cli.studio.web import HEADERS, api, context, reply

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


def static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, media type) of every file the studio serves as is."""
    folder = files("facegen_cli.studio") / "static"
    return {f.name: (f.read_bytes(), TYPES[f.name[f.name.rfind("."):]]) for f in folder.iterdir()
            if f.name[f.name.rfind("."):] in TYPES}


STATIC = static_files()


async def page(request: Request) -> Response:
    content, media = STATIC["index.html"]
    return Response(content, media_type=media, headers=HEADERS)


async def asset(request: Request) -> Response:
    found = STATIC.get(request.path_params["name"])
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(found[0], media_type=found[1], headers=HEADERS)


@api
async def info(request: Request) -> Response:
    ctx = context(request)
    return reply({**ctx.studio.info(), "quiz": bool(ctx.quiz.names), "real_images": len(ctx.quiz.names),
                  "real_skipped": ctx.quiz.skipped, "encoder": ctx.projector.encoder is not None,
                  "controls": ctx.controls.fitted, "keeps_identity": ctx.controls.keeps_identity, "limits": {"latent": LATENT_LIMIT, "photo": PHOTO_LIMIT},
                  "projection": request_defaults()})


ROUTES = [Route("/", page), Route("/static/{name}", asset), Route("/api/info", info)]
