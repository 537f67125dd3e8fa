"""The studio's web app: the routes of each page (studio/routes/) mounted over one `Context`.

Every API path names a tab, and within it server-made ids; the routes share their request handling
(bounded bodies, one-line JSON errors) through studio/web.py.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from facegen_cli.studio.controls import ControlPanel
from facegen_cli.studio.projection import Projector
from facegen_cli.studio.quiz import QuizMaster
from facegen_cli.studio.routes import downloads, edit, explore, morph, pages, project, quiz
from facegen_cli.studio.service import Studio
from facegen_cli.studio.web import HEADERS, Context

log = logging.getLogger("facegen.studio")
AREAS = (pages, explore, edit, downloads, morph, project, quiz)


async def server_error(request: Request, error: Exception) -> Response:
    log.error("request %s failed", request.url.path, exc_info=error)
    return JSONResponse({"error": f"internal error ({type(error).__name__}); see the studio's log"},
                        status_code=500, headers=HEADERS)


def create_app(studio: Studio, quiz_master: QuizMaster, projector: Projector, controls: ControlPanel,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app; `allowed_hosts` guards a loopback server against DNS rebinding."""
    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await run_in_threadpool(studio.close)

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    app = Starlette(routes=[route for area in AREAS for route in area.ROUTES], middleware=middleware,
                    exception_handlers={Exception: server_error}, lifespan=lifespan)
    app.state.context = Context(studio, quiz_master, projector, controls)
    return app
