"""Pages and fragments from templates, the messages an action leaves for the next page
(`Flashes`), and the redirect after a POST."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from infinitic_streams.dashboard import security

FLASHES_KEPT = 200


@dataclass(frozen=True)
class Flash:
    text: str
    kind: str = "info"  # info, error


@dataclass
class Flashes:
    """What an action says, shown once by the page it redirects to (the URL carries a random
    id, not the text: a link cannot make the dashboard say something)."""

    kept: OrderedDict[str, Flash] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, text: str, kind: str = "info") -> str:
        key = secrets.token_urlsafe(8)
        with self.lock:
            self.kept[key] = Flash(text, kind)
            while len(self.kept) > FLASHES_KEPT:
                self.kept.popitem(last=False)
        return key

    def pop(self, key: str | None) -> Flash | None:
        if not key:
            return None
        with self.lock:
            return self.kept.pop(key, None)


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page (or fragment) with what every template needs: the namespace, the CSRF token,
    the flash message of the action that led here."""
    state = request.app.state
    base = {
        "namespace": state.backend.namespace,
        "flash": state.flashes.pop(request.query_params.get("flash")),
        "path": request.url.path,
        **security.context(state.guard, request),
    }
    return state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, {**base, **context}, status_code=status
    )


def redirect(request: Request, path: str, text: str, kind: str = "info", **params: str) -> Response:
    """303 to `path` (with `params`), showing `text` there once."""
    key = request.app.state.flashes.add(text, kind)
    query = urlencode({**{k: v for k, v in params.items() if v}, "flash": key})
    return RedirectResponse(f"{path}?{query}", 303)


def problem(request: Request, title: str, message: str, status: int) -> Response:
    return render(request, "problem.html", {"title": title, "message": message}, status)


def query(**params: str | None) -> str:
    """`a=1&b=2` of the params that have a value."""
    return urlencode({k: v for k, v in params.items() if v})
