"""The studio's web app: Starlette routes over `Studio`, `QuizMaster` and `Projector`.

Static files are read once into memory and looked up by name, so no request path ever reaches the
file system; every API path names a tab, and within it server-made ids. Errors come back as JSON
`{"error": "one line"}` for the page to show; a traceback only ever goes to the server's log.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any, Awaitable, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.studio.projection import Projector
from facegen_cli.studio.quiz import QuizMaster
from facegen_cli.studio.service import KINDS, Look, Studio, field
from facegen_cli.studio.state import Face, NotFound, Tab
from facegen_cli.studio.uploads import LATENT_LIMIT, PHOTO_LIMIT, TooLarge, read_limited

log = logging.getLogger("facegen.studio")
JSON_LIMIT = 64 << 10  # the largest request (an average of 100 faces) is a few KiB
JSON_DEPTH = 16  # the requests nest 3 deep; Python's parser recurses once per level
BODY_TIMEOUT = 30.0  # seconds to receive a whole request body (a 20 MiB photo takes well under 1 on loopback)
JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                      "connect-src 'self' blob:; "
                                      "object-src 'none'; frame-ancestors 'none'"}


class SlowBody(BadInput):
    """A request body that did not arrive in BODY_TIMEOUT seconds."""


STATUS = ((NotFound, 404), (SlowBody, 408), (TooLarge, 413), (BadInput, 400), (FacegenError, 422))


def static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, media type) of every file the studio serves as is."""
    folder = files("facegen_cli.studio") / "static"
    return {f.name: (f.read_bytes(), TYPES[f.name[f.name.rfind("."):]]) for f in folder.iterdir()
            if f.name[f.name.rfind("."):] in TYPES}


def error_response(error: Exception) -> JSONResponse:
    status = next(code for kind, code in STATUS if isinstance(error, kind))
    close = {"Connection": "close"} if isinstance(error, SlowBody) else {}  # the rest of its body will not come
    return JSONResponse({"error": " ".join(str(error).split())}, status_code=status, headers={**HEADERS, **close})


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


def download(data: bytes, media: str, name: str) -> Response:
    disposition = f'attachment; filename="{name}"'
    return Response(data, media_type=media, headers={**HEADERS, "Content-Disposition": disposition})


def create_app(studio: Studio, quiz: QuizMaster, projector: Projector,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app; `allowed_hosts` guards a loopback server against DNS rebinding."""
    static = static_files()

    def tab_of(request: Request) -> Tab:
        return studio.tabs.get(request.path_params["tab"])

    async def body_json(request: Request) -> dict:
        """Every JSON route's body, read and parsed within bounds (size, time, depth)."""
        return parse_json(await read_body(request, JSON_LIMIT, "request"))

    def api(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except FacegenError as error:
                return error_response(error)
        return run

    def query(request: Request, name: str, kind: type, default: Any = ...) -> Any:
        value = request.query_params.get(name)
        if value is None:
            return field({}, name, kind, default)
        try:
            return kind(value) if kind is not bool else value in ("1", "true", "on")
        except ValueError:
            raise BadInput(f"{name}={value!r} is not {KINDS[kind]}") from None

    async def page(request: Request) -> Response:
        content, media = static["index.html"]
        return Response(content, media_type=media, headers=HEADERS)

    async def asset(request: Request) -> Response:
        found = static.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(found[0], media_type=found[1], headers=HEADERS)

    @api
    async def info(request: Request) -> Response:
        return JSONResponse({**studio.info(), "quiz": bool(quiz.names), "real_images": len(quiz.names),
                             "real_skipped": quiz.skipped,
                             "limits": {"latent": LATENT_LIMIT, "photo": PHOTO_LIMIT}}, headers=HEADERS)

    @api
    async def explore(request: Request) -> Response:
        tab, seq = tab_of(request), query(request, "seq", int, None)
        if seq is not None:
            tab.claim("explore", seq)
        args = (tab, seq, query(request, "start", int, 0), query(request, "count", int, 12),
                Look.read(lambda *a: query(request, *a)))
        page = await run_in_threadpool(studio.explore, *args)
        if page is None:
            return Response(status_code=204, headers={**HEADERS, "X-Stale": "1"})
        return JSONResponse({"faces": page}, headers=HEADERS)

    @api
    async def faces(request: Request) -> Response:
        tab = tab_of(request)
        if request.method == "POST":
            p = await body_json(request)
            face = await run_in_threadpool(studio.open_seed, tab, field(p, "seed", int), Look.read(
                lambda *a: field(p, *a)))
            return JSONResponse(face.summary(tab.id), headers=HEADERS)
        return JSONResponse({"faces": [f.summary(tab.id) for f in tab.face_list()]}, headers=HEADERS)

    @api
    async def upload(request: Request) -> Response:
        tab, name = tab_of(request), query(request, "name", str, "latent.npy")
        data = await read_body(request, LATENT_LIMIT, name)
        face = await run_in_threadpool(studio.upload_latent, tab, data, name)
        return JSONResponse(face.summary(tab.id), headers=HEADERS)

    def face_download(face: Face, kind: str) -> Response:
        if kind not in ("png", "npy"):
            raise NotFound("faces download as .png or .npy")
        stem = re.sub(r"[^A-Za-z0-9_.]+", "-", face.name)[:60].strip("-.") or face.id
        if kind == "png":
            return download(face.png, "image/png", f"{stem}.png")
        return download(studio.npy(face), "application/octet-stream", f"{stem}.npy")

    @api
    async def face_file(request: Request) -> Response:
        tab = tab_of(request)
        return face_download(tab.face(request.path_params["face"]), request.path_params["kind"])

    @api
    async def result_file(request: Request) -> Response:
        tab, payload = tab_of(request), await body_json(request)
        return face_download(await run_in_threadpool(studio.result, tab, payload), request.path_params["kind"])

    @api
    async def live(request: Request) -> Response:
        tab, channel = tab_of(request), request.path_params["channel"]
        payload = await body_json(request)
        seq = field(payload, "seq", int)
        tab.claim(channel, seq)
        started = time.perf_counter()
        image = await run_in_threadpool(studio.live, tab, payload, channel, seq)
        if image is None:
            return Response(status_code=204, headers={**HEADERS, "X-Stale": "1"})
        took = f"{(time.perf_counter() - started) * 1000:.1f}"  # waiting for the network's lock included
        return Response(image, media_type="image/png", headers={**HEADERS, "X-Seq": str(seq), "X-Server-Ms": took})

    @api
    async def keep(request: Request) -> Response:
        tab = tab_of(request)
        face = await run_in_threadpool(studio.keep, tab, await body_json(request))
        return JSONResponse(face.summary(tab.id), headers=HEADERS)

    @api
    async def stats(request: Request) -> Response:
        tab = tab_of(request)
        return JSONResponse({"renders": tab.renders, "dropped": tab.dropped}, headers=HEADERS)

    @api
    async def morph(request: Request) -> Response:
        tab = tab_of(request)
        return JSONResponse(await run_in_threadpool(studio.morph, tab, await body_json(request)), headers=HEADERS)

    @api
    async def morph_file(request: Request) -> Response:
        tab, name = tab_of(request), f"{request.path_params['file']}.{request.path_params['kind']}"
        path = tab.files.get(name)
        if path is None or not path.exists():
            raise NotFound(f"this tab has no morph {name!r}; make it again")
        media = "video/mp4" if name.endswith(".mp4") else "image/gif"
        return download(path.read_bytes(), media, f"morph.{request.path_params['kind']}")

    @api
    async def quiz_start(request: Request) -> Response:
        tab, p = tab_of(request), await body_json(request)
        made = await run_in_threadpool(quiz.start, tab, field(p, "rounds", int, 10), field(p, "psi", float, 1.0))
        return JSONResponse(made.summary(tab.id), headers=HEADERS)

    @api
    async def quiz_image(request: Request) -> Response:
        item = quiz.item(tab_of(request), request.path_params["quiz"], request.path_params["index"])
        return Response(item.png, media_type="image/png", headers=HEADERS)

    @api
    async def quiz_answer(request: Request) -> Response:
        tab, p = tab_of(request), await body_json(request)
        done = quiz.answer(tab, request.path_params["quiz"], field(p, "index", int), field(p, "answer", str),
                           field(p, "ms", float, 0.0))
        return JSONResponse(done, headers=HEADERS)

    @api
    async def quiz_result(request: Request) -> Response:
        return JSONResponse(quiz.result(tab_of(request), request.path_params["quiz"]), headers=HEADERS)

    async def answers(request: Request) -> Response:
        return download(quiz.survey.csv().encode(), "text/csv; charset=utf-8", "facegen-quiz-answers.csv")

    async def quiz_stats(request: Request) -> Response:
        return JSONResponse(quiz.survey.stats(), headers=HEADERS)

    @api
    async def project_start(request: Request) -> Response:
        tab, name = tab_of(request), query(request, "name", str, "photo")
        data = await read_body(request, PHOTO_LIMIT, name)
        job = projector.start(tab, data, name, query(request, "steps", int, 100), query(request, "align", str, "ffhq"),
                              query(request, "wplus", bool, False), query(request, "perceptual", bool, True))
        return JSONResponse(job.status(tab.id), headers=HEADERS)

    @api
    async def project_status(request: Request) -> Response:
        tab = tab_of(request)
        return JSONResponse(projector.job(tab, request.path_params["job"]).status(tab.id), headers=HEADERS)

    @api
    async def project_image(request: Request) -> Response:
        job = projector.job(tab_of(request), request.path_params["job"])
        data = job.target if request.path_params["kind"] == "target" else job.preview
        if not data:
            raise NotFound("no image yet")
        return Response(data, media_type="image/png", headers=HEADERS)

    async def server_error(request: Request, error: Exception) -> Response:
        log.error("request %s failed", request.url.path, exc_info=error)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); see the studio's log"},
                            status_code=500, headers=HEADERS)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await run_in_threadpool(studio.close)

    t = "/api/t/{tab}"
    routes = [
        Route("/", page), Route("/static/{name}", asset), Route("/api/info", info),
        Route("/api/quiz/answers.csv", answers), Route("/api/quiz/stats", quiz_stats),
        Route(f"{t}/explore", explore), Route(f"{t}/faces", faces, methods=["GET", "POST"]),
        Route(f"{t}/faces/upload", upload, methods=["POST"]),
        Route(f"{t}/faces/{{face}}.{{kind:str}}", face_file),
        Route(f"{t}/live/{{channel}}", live, methods=["POST"]), Route(f"{t}/keep", keep, methods=["POST"]),
        Route(f"{t}/result.{{kind}}", result_file, methods=["POST"]),
        Route(f"{t}/stats", stats), Route(f"{t}/morph", morph, methods=["POST"]),
        Route(f"{t}/morph/{{file}}.{{kind}}", morph_file),
        Route(f"{t}/quiz", quiz_start, methods=["POST"]), Route(f"{t}/quiz/{{quiz}}/{{index:int}}.png", quiz_image),
        Route(f"{t}/quiz/{{quiz}}/answer", quiz_answer, methods=["POST"]),
        Route(f"{t}/quiz/{{quiz}}/result", quiz_result),
        Route(f"{t}/project", project_start, methods=["POST"]), Route(f"{t}/project/{{job}}", project_status),
        Route(f"{t}/project/{{job}}/{{kind}}.png", project_image),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers={Exception: server_error},
                     lifespan=lifespan)
