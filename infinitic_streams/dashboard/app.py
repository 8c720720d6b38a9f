"""The dashboard's Starlette application: routes of every page, templates, static files, the
security middleware, and what a failure looks like (a page saying what went wrong; a live
fragment saying so in place, so the page keeps what it showed)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from infinitic_streams.dashboard import engines, letters, workflow, workflows
from infinitic_streams.dashboard.rendering import Flashes, problem, render
from infinitic_streams.dashboard.security import Forbidden, Guard, forbidden_response
from infinitic_streams.dashboard.views import FILTERS
from infinitic_streams.errors import InfiniticError

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("infinitic_streams.dashboard")


def create_app(backend: Any, guard: Guard | None = None) -> Starlette:
    """The dashboard of `backend`'s namespace (a `Backend`, or anything with its attributes)."""
    guard = guard or Guard()
    app = Starlette(
        routes=[
            Route("/", _home),
            Route("/favicon.ico", _favicon),
            *workflows.routes,
            *workflow.routes,
            *letters.routes,
            *engines.routes,
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
        exception_handlers={Forbidden: _forbidden, InfiniticError: _failed, TimeoutError: _failed},
    )
    app.state.backend = backend
    app.state.guard = guard
    app.state.flashes = Flashes()
    app.state.templates = Jinja2Templates(env=_environment())
    return app


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def _home(request: Request) -> Response:
    return RedirectResponse("/workflows", 303)


def _favicon(request: Request) -> Response:
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


async def _forbidden(request: Request, error: Exception) -> Response:
    assert isinstance(error, Forbidden)
    return forbidden_response(error)


async def _failed(request: Request, error: Exception) -> Response:
    """Kafka or the engine did not answer: say so (in place, for a live fragment)."""
    message = f"{type(error).__name__}: {error}"
    logger.warning("dashboard: %s %s: %s", request.method, request.url.path, message)
    if request.url.path.endswith("/live"):
        return render(request, "_unavailable.html", {"message": message})
    return problem(request, "Not available right now", message, 503)
