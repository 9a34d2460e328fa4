"""The BentoML service: ``bentoml serve overblik.serving._service:ScoringService``.

Each POST endpoint is a typed ``@bentoml.api`` method that hands its validated request to
:class:`~overblik.serving._engine.ScoringEngine`; the GET endpoints, the OpenAPI document and
Swagger UI are a small Starlette app mounted on the service. Access control, limits, error
format and the audit log are one middleware (:mod:`overblik.serving._middleware`) driven by
the route table (:mod:`overblik.serving._routes`). A new endpoint is one method below and one
row in that table.

Configuration comes from ``OVERBLIK_SERVE_*`` environment variables
(:class:`~overblik.serving._settings.ServingSettings`), set by ``overblik serve``. If the
service cannot start (model not approved, files missing, ...), the worker logs one clear
line and, when started by ``overblik serve`` (``OVERBLIK_SERVE_STOP_ON_FAILURE=1``), stops the
whole server instead of letting BentoML restart the worker forever.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar, cast

import anyio.to_thread
import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from overblik.serving._engine import RequestRecord, ScoringEngine
from overblik.serving._metrics import CONTENT_TYPE, render
from overblik.serving._middleware import AccessAuditMiddleware, current_record, error_body
from overblik.serving._model import StartupError
from overblik.serving._openapi import SWAGGER_HTML, openapi_document
from overblik.serving._problems import ApiError, problem_answer
from overblik.serving._reasons import Language, pick_language
from overblik.serving._schemas import (
    AllocateRequest,
    AllocateResponse,
    BatchRequest,
    BatchResponse,
    ExplainRequest,
    ExplainResponse,
    FeedbackRequest,
    FeedbackResponse,
    RecommendRequest,
    RecommendResponse,
    ScoreRequest,
    ScoreResponse,
)
from overblik.serving._settings import ServingSettings

__all__ = ["SERVICE", "STOP_ON_FAILURE_ENV", "WORKERS_ENV", "ScoringService"]

logger = logging.getLogger("overblik.serving")
STOP_ON_FAILURE_ENV = "OVERBLIK_SERVE_STOP_ON_FAILURE"
WORKERS_ENV = "OVERBLIK_SERVE_WORKERS"
T = TypeVar("T")


class _NoInputInLogs(logging.Filter):
    """Drop BentoML's traceback of a client's validation error.

    The client gets a 422 naming the field and the access log has the request; the
    traceback adds nothing and, for models without ``hide_input_in_errors``, would print
    the input.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ValidationError)


def _log_to_stderr() -> None:
    """The service's own lines (start, one access line per request) next to BentoML's."""
    ours = logging.getLogger("overblik.serving")
    if not ours.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] [overblik] "
                                               "%(message)s"))
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)


def _engine() -> ScoringEngine | None:
    try:
        service = bentoml.get_current_service()
    except Exception:  # no service instance yet
        return None
    return cast(ScoringEngine | None, getattr(service, "engine", None))


def _running_engine(request: Request) -> ScoringEngine:
    engine = _engine()
    if engine is None:
        raise RuntimeError("the scoring engine is not running")
    return engine


async def _metadata(request: Request) -> Response:
    engine = _running_engine(request)
    return JSONResponse(engine.metadata().model_dump(mode="json"))


async def _verify(request: Request) -> Response:
    engine = _running_engine(request)
    result = await anyio.to_thread.run_sync(engine.verify)
    current_record().summary = {"intact": result.intact, "entries": result.entries}
    return JSONResponse(result.model_dump(mode="json"))


async def _docs(request: Request) -> Response:
    return HTMLResponse(SWAGGER_HTML)


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(SERVICE.openapi_spec.asdict()))


async def _metrics(request: Request) -> Response:
    return Response(render(), media_type=CONTENT_TYPE)


async def _root(request: Request) -> Response:
    return RedirectResponse("/docs")


_pages = Starlette(routes=[
    Route("/metadata", _metadata, methods=["GET"]),
    Route("/audit/verify", _verify, methods=["GET"]),
    Route("/metrics", _metrics, methods=["GET"]),
    Route("/docs", _docs, methods=["GET"]),
    Route("/docs.json", _openapi, methods=["GET"]),
    Route("/", _root, methods=["GET"]),
])


@bentoml.service(
    name="overblik-scoring",
    # Read when the module is imported: `overblik serve --workers N` sets it.
    workers=int(os.environ.get(WORKERS_ENV, "1")),
    traffic={"timeout": 60, "max_concurrency": 256},
    # BentoML's access log and HTTP metrics record raw request paths (anything a client
    # types); the middleware logs and counts routes instead (overblik.serving._metrics).
    logging={"access": {"enabled": False}},
    metrics={"enabled": False},
)
@bentoml.asgi_app(_pages, path="/")
class ScoringService:
    """Risk scores with reasons, access control and an audit log (see module docs)."""

    def __init__(self) -> None:
        logging.getLogger("bentoml._internal.server.http_app").addFilter(_NoInputInLogs())
        _log_to_stderr()
        try:
            self.engine = ScoringEngine.start(ServingSettings.from_env())
        except StartupError as exc:
            logger.error("overblik scoring service cannot start: %s", exc)
            if os.environ.get(STOP_ON_FAILURE_ENV) == "1":
                os.kill(os.getppid(), signal.SIGTERM)
            raise
        m = self.engine.model
        logger.info("serving %s version %s (%s), approved by %s; %d profiles as of %s",
                    m.name, m.version, m.alias, m.approval.by, len(self.engine.store),
                    self.engine.store.meta.as_of)

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.engine.close()

    def _answer(self, ctx: bentoml.Context,
                work: Callable[[Language, RequestRecord], T]) -> T:
        """Run ``work`` with the request's language and audit record; errors as JSON.

        The APIs are ``async`` and score on the event loop: a score is ~1 ms of CPU, less
        than handing it to a worker thread and back costs on a busy machine.
        """
        record = current_record()
        lang = pick_language(ctx.request.headers.get("accept-language"))
        ctx.response.headers["Content-Language"] = lang
        # The same request reads differently by Accept-Language: a cache must key on it.
        ctx.response.headers["Vary"] = "Accept-Language"
        try:
            return work(lang, record)
        except ApiError as exc:
            ctx.response.status_code = exc.status
            text, fields, record.summary = problem_answer(exc)
            response: Any = Response(error_body(text, fields, record.request_id),
                                     status_code=exc.status, media_type="application/json")
            return cast(T, response)

    @bentoml.api(route="/score")
    async def score(self, body: ScoreRequest, /, ctx: bentoml.Context) -> ScoreResponse:
        """Score one citizen, by CPR number (profile store) or by an explicit feature
        payload: calibrated probability, risk band, the top reasons in Danish or English
        (``Accept-Language``), the model version, a request id and the notice that the
        score supports and does not make a decision. Unknown citizen: 404."""
        return self._answer(ctx, lambda lang, rec: self.engine.score(body, lang, rec))

    @bentoml.api(route="/score/batch")
    async def score_batch(self, body: BatchRequest, /, ctx: bentoml.Context
                          ) -> BatchResponse:
        """Score up to 1,000 citizens at once (the nightly list); citizens not in the
        profile store come back as ``not_found``. Each result has its own request id
        (``<request_id>-<index>``) for feedback."""
        # Up to 1,000 citizens: off the event loop, so single scores keep flowing.
        return await anyio.to_thread.run_sync(
            self._answer, ctx, lambda lang, rec: self.engine.score_batch(body, lang, rec))

    @bentoml.api(route="/explain")
    async def explain(self, body: ExplainRequest, /, ctx: bentoml.Context) -> ExplainResponse:
        """The contribution of every feature (SHAP values on the raw margin, log-odds, before
        calibration), largest first."""
        return self._answer(ctx, lambda lang, rec: self.engine.explain(body, lang, rec))

    @bentoml.api(route="/recommend")
    async def recommend(self, body: RecommendRequest, /, ctx: bentoml.Context
                        ) -> RecommendResponse:
        """Each programme's estimated effect for one citizen (CPR number or features): the
        reduction in the probability of the outcome (positive = helps) with its interval,
        whether it is an extrapolation, the cost of a place and the reasons behind it in
        Danish or English (``Accept-Language``), largest effect first; ``suggested`` is the
        programme with the largest effect whose interval is above zero. 409 when the
        served version has no effect models."""
        return self._answer(ctx, lambda lang, rec: self.engine.recommend(body, lang, rec))

    @bentoml.api(route="/allocate")
    async def allocate(self, body: AllocateRequest, /, ctx: bentoml.Context
                       ) -> AllocateResponse:
        """The places of each programme for up to 20,000 citizens (feature payloads, each
        with the caller's ``ref``) where they do the most good, within the places, costs
        and budget (defaults: the served version's). 409 when the served version has no
        effect models."""
        # Up to 20,000 citizens and a solver: off the event loop.
        return await anyio.to_thread.run_sync(
            self._answer, ctx, lambda lang, rec: self.engine.allocate(body, lang, rec))

    @bentoml.api(route="/feedback")
    async def feedback(self, body: FeedbackRequest, /, ctx: bentoml.Context
                       ) -> FeedbackResponse:
        """The caseworker's decision on a scored or recommended request (followed or
        overridden, the action chosen, the reason), appended to the audit log with the
        request it answers. A second decision on the same score names the one it replaces
        in ``corrects`` (409 otherwise)."""
        return self._answer(ctx, lambda lang, rec: self.engine.feedback(body, rec))


# mypy does not apply class decorators: the name is a bentoml.Service at run time.
SERVICE = cast("bentoml.Service[ScoringService]", ScoringService)
SERVICE.add_asgi_middleware(AccessAuditMiddleware, engine=_engine)
