"""Downloads of a face (kept in the tab) or of what an edit, mix or average shows (not kept): PNG, latent, and
a tuned face's network file; a projected face's aligned photo."""
from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.service import Studio
from facegen_cli.studio.state import Face, NotFound
from facegen_cli.studio.web import HEADERS, TAB, api, body_json, context, download, tab_of

KINDS = ("png", "npy", "safetensors")


def face_download(studio: Studio, face: Face, kind: str) -> Response:
    if kind not in KINDS:
        raise NotFound("faces download as .png, .npy or (a tuned face's network) .safetensors")
    stem = re.sub(r"[^A-Za-z0-9_.]+", "-", face.name)[:60].strip("-.") or face.id
    if kind == "png":
        return download(face.png, "image/png", f"{stem}.png")
    if kind == "safetensors":
        return download(studio.tuned_file(face), "application/octet-stream", f"{stem}.safetensors")
    return download(studio.npy(face), "application/octet-stream", f"{stem}.npy")


@api
async def face_file(request: Request) -> Response:
    tab = tab_of(request)
    return face_download(context(request).studio, tab.face(request.path_params["face"]), request.path_params["kind"])


@api
async def photo(request: Request) -> Response:
    face = tab_of(request).face(request.path_params["face"])
    if not face.photo:
        raise NotFound(f"{face.name!r} was not projected from a photo")
    return Response(face.photo, media_type="image/png", headers=HEADERS)


@api
async def result_file(request: Request) -> Response:
    tab, payload, studio = tab_of(request), await body_json(request), context(request).studio
    return face_download(studio, await run_in_threadpool(studio.result, tab, payload), request.path_params["kind"])


ROUTES = [Route(f"{TAB}/faces/{{face}}.{{kind:str}}", face_file), Route(f"{TAB}/faces/{{face}}/photo.png", photo),
          Route(f"{TAB}/result.{{kind}}", result_file, methods=["POST"])]
