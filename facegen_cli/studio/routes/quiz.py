"""Quiz: a quiz started, its images, answers and score, and the survey of every answer in this studio."""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facegen_cli.studio.service import field
from facegen_cli.studio.web import HEADERS, TAB, api, body_json, context, download, reply, tab_of


@api
async def start(request: Request) -> Response:
    tab, p = tab_of(request), await body_json(request)
    made = await run_in_threadpool(context(request).quiz.start, tab, field(p, "rounds", int, 10),
                                   field(p, "psi", float, 1.0))
    return reply(made.summary(tab.id))


@api
async def image(request: Request) -> Response:
    item = context(request).quiz.item(tab_of(request), request.path_params["quiz"], request.path_params["index"])
    return Response(item.png, media_type="image/png", headers=HEADERS)


@api
async def answer(request: Request) -> Response:
    tab, p = tab_of(request), await body_json(request)
    return reply(context(request).quiz.answer(tab, request.path_params["quiz"], field(p, "index", int),
                                              field(p, "answer", str), field(p, "ms", float, 0.0)))


@api
async def result(request: Request) -> Response:
    return reply(context(request).quiz.result(tab_of(request), request.path_params["quiz"]))


async def answers(request: Request) -> Response:
    return download(context(request).quiz.survey.csv().encode(), "text/csv; charset=utf-8",
                    "facegen-quiz-answers.csv")


async def stats(request: Request) -> Response:
    return reply(context(request).quiz.survey.stats())


ROUTES = [Route("/api/quiz/answers.csv", answers), Route("/api/quiz/stats", stats),
          Route(f"{TAB}/quiz", start, methods=["POST"]), Route(f"{TAB}/quiz/{{quiz}}/{{index:int}}.png", image),
          Route(f"{TAB}/quiz/{{quiz}}/answer", answer, methods=["POST"]), Route(f"{TAB}/quiz/{{quiz}}/result", result)]
