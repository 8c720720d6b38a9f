"""The engines and workers page: the namespace's consumer groups (engines, visibility index,
service workers), their members and partitions, lag per partition, throughput, and the dead
letters that came from their topics; refreshed live (each look is a throughput sample)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infinitic_streams.dashboard.rendering import render


def page(request: Request) -> Response:
    return render(request, "engines.html", _context(request))


def live(request: Request) -> Response:
    return render(request, "_engines_live.html", _context(request))


def _context(request: Request) -> dict[str, Any]:
    backend = request.app.state.backend
    letters = backend.letters.count_by_topic()
    groups = backend.groups.read(letters)
    return {"groups": groups, "letters_total": sum(letters.values())}


routes = [Route("/engines", page), Route("/engines/live", live)]
