"""Who may use the dashboard, and which requests may act.

- Binding: loopback (127.0.0.0/8, ::1, localhost) by default; any other address requires a
  token (`check_bind`).
- With a token, every request carries it: `Authorization: Bearer T`, or the cookie set by a
  first visit with `?token=T` (HttpOnly, SameSite=Strict; the visit is redirected to the same
  URL without the token, so it stays out of the history). Else 401.
- Every POST comes from the dashboard's own pages: `Sec-Fetch-Site` (when sent) is
  `same-origin`, `Origin` (when sent) is the dashboard's, and the form carries the CSRF token
  of the page (an HMAC, under a key of this process, of a random cookie: a request forged
  elsewhere can neither read nor compute it). Else 403.
- Without a token, the `Host` a request names must be a loopback one: a site whose name an
  attacker points at 127.0.0.1 (DNS rebinding) gets 403.
- Every response forbids framing, inline scripts and caching (`HEADERS`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

TOKEN_COOKIE = "infinitic_dashboard_token"
CSRF_COOKIE = "infinitic_dashboard_csrf"
CSRF_FIELD = "csrf"
TOKEN_PARAM = "token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin null
    "Cache-Control": "no-store",
}


class InsecureBind(ValueError):
    """Serving on a non-loopback address without a token; the message says what to do."""


class Forbidden(Exception):
    """A POST that did not come from the dashboard's own page (403)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on `host` without a token unless it is a loopback address."""
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"The dashboard would be reachable by others on {host}, and it can cancel and "
            'retry workflows: give it a token (--token T, or token = "T" under [dashboard] '
            "in infinitic.toml), or bind 127.0.0.1 (the default)."
        )


@dataclass
class Guard:
    """The checks of one dashboard process (see the module's doc)."""

    token: str | None = None
    secure_cookies: bool = False  # set when served over https
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    # -- authentication --------------------------------------------------------------------------

    def authenticated(self, request: Request) -> bool:
        if not self.token:
            return True
        given = _bearer(request) or request.cookies.get(TOKEN_COOKIE)
        return given is not None and _same(given, self.token)

    def token_in_url(self, request: Request) -> bool:
        given = request.query_params.get(TOKEN_PARAM)
        return bool(self.token and given and _same(given, self.token))

    def enter(self, request: Request) -> Response:
        """The first visit with `?token=`: the cookie, and the same URL without the token."""
        rest = request.url.remove_query_params(TOKEN_PARAM)
        target = rest.path + (f"?{rest.query}" if rest.query else "")
        response = RedirectResponse(target, 303)
        assert self.token is not None
        self._cookie(response, TOKEN_COOKIE, self.token)
        return response

    def host_allowed(self, request: Request) -> bool:
        """Without a token, only a loopback `Host` (against DNS rebinding)."""
        if self.token:
            return True
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name)

    # -- cross-site protection -------------------------------------------------------------------

    def check_origin(self, request: Request) -> None:
        """Refuse a POST sent by another site (what browsers say of where it comes from)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            raise Forbidden(f"refused: a {site} request cannot act on workflows")
        origin = request.headers.get("origin")
        if origin is not None and origin != _own_origin(request):
            raise Forbidden(f"refused: a request from {origin} cannot act on workflows")

    def csrf_token(self, request: Request) -> str:
        """The token forms of this page carry (from the browser's CSRF cookie)."""
        return self._sign(self.csrf_cookie(request))

    def csrf_cookie(self, request: Request) -> str:
        """The browser's CSRF cookie, or a new one (set on the response by `finish`)."""
        value = request.cookies.get(CSRF_COOKIE) or request.scope.get("infinitic.csrf")
        if not value:
            value = secrets.token_urlsafe(24)
            request.scope["infinitic.csrf"] = value
        return str(value)

    async def form(self, request: Request) -> FormData:
        """The POSTed form, once its CSRF token is checked; `Forbidden` otherwise."""
        form = await request.form()
        given = form.get(CSRF_FIELD)
        cookie = request.cookies.get(CSRF_COOKIE)
        if not isinstance(given, str) or not cookie:
            raise Forbidden("refused: the form has no CSRF token (reload the page)")
        if not _same(given, self._sign(cookie)):
            raise Forbidden("refused: the form's CSRF token is wrong (reload the page)")
        return form

    def finish(self, request: Request, response: Response) -> Response:
        """Security headers, and the CSRF cookie of a first visit."""
        response.headers.update(HEADERS)
        if new := request.scope.get("infinitic.csrf"):
            self._cookie(response, CSRF_COOKIE, new)
        return response

    def _sign(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()

    def _cookie(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name, value, httponly=True, samesite="strict", secure=self.secure_cookies, path="/"
        )

    # -- the middleware --------------------------------------------------------------------------

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not self.host_allowed(request):
            refused = "refused: this dashboard answers only on a loopback address (no token)"
            return self.finish(request, PlainTextResponse(refused, 403))
        if self.token_in_url(request):
            return self.finish(request, self.enter(request))
        if not self.authenticated(request):
            return self.finish(request, unauthorized())
        if request.method not in SAFE_METHODS:
            try:
                self.check_origin(request)
            except Forbidden as refused:
                return self.finish(request, PlainTextResponse(str(refused), 403))
        return self.finish(request, await call_next(request))


def unauthorized() -> Response:
    return PlainTextResponse(
        "This dashboard needs its token: open the URL that `infinitic-streams dashboard` "
        "printed (it ends with ?token=...), or send `Authorization: Bearer <token>`.\n",
        401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _same(given: str, expected: str) -> bool:
    """Equal, in a time that does not tell how much of it matched (any characters)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _own_origin(request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}"


def forbidden_response(refused: Forbidden) -> Response:
    return PlainTextResponse(str(refused), 403)


def context(guard: Guard, request: Request) -> dict[str, Any]:
    """What every template needs from here."""
    return {"csrf": guard.csrf_token(request), "csrf_field": CSRF_FIELD}
