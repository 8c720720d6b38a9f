"""The dashboard without Kafka: its security rules (a token off loopback, the token on every
request, cross-site POSTs refused, the CSRF token), its pages rendered from a fake client, and
its import rules. The browser tests on a real broker are in test_dashboard_browser.py."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from infinitic_streams.cli.app import app as cli_app
from infinitic_streams.dashboard import Guard, InsecureBind, check_bind, create_app
from infinitic_streams.dashboard.backend import NotRunning
from infinitic_streams.dashboard.groups import Rates
from infinitic_streams.dashboard.views import partition_ranges
from infinitic_streams.errors import WorkflowNotFound

PACKAGE = Path(__file__).resolve().parent.parent / "infinitic_streams"
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
TOKEN = "s3cret-token"


# -- a fake namespace ------------------------------------------------------------------------


@dataclass
class Info:
    id: str
    name: str = "Orders"
    method: str = "run"
    status: str = "RUNNING"
    tags: tuple[str, ...] = ()
    error: str | None = None
    traceback: str = ""
    result: Any = None
    args: tuple[Any, ...] = ()
    pending: list[str] = field(default_factory=list)
    children: list[tuple[str, str, str]] = field(default_factory=list)
    signals_waiting: dict[str, int] = field(default_factory=dict)
    started_at: datetime = T0
    updated_at: datetime = T0
    ended_at: datetime | None = None

    @property
    def cursor(self) -> str:
        return f"c-{self.id}"


class FakeHandle:
    def __init__(self, client: FakeClient, workflow_id: str) -> None:
        self.client, self.id = client, workflow_id

    def describe(self) -> Info:
        if self.id not in self.client.infos:
            raise WorkflowNotFound(self.id)
        return self.client.infos[self.id]

    def history(self) -> list[dict[str, Any]]:
        return [{"at": T0, "event": "Started", "method": "run", "args": ['"x"']}]

    def retry(self) -> None:
        self.client.done.append(("retry", self.id))

    def cancel(self, reason: str = "") -> bool:
        self.client.done.append(("cancel", self.id))
        return True

    def signal(self, channel: str, value: Any) -> None:
        self.client.done.append(("signal", self.id, channel, value))


class FakeClient:
    def __init__(self, infos: list[Info]) -> None:
        self.infos = {info.id: info for info in infos}
        self.done: list[tuple[Any, ...]] = []

    def _matching(self, workflow: Any, status: Any, tag: Any) -> list[Info]:
        return [
            i
            for i in sorted(self.infos.values(), key=lambda i: i.updated_at, reverse=True)
            if workflow in (None, i.name) and status in (None, i.status)
            if tag is None or tag in i.tags
        ]

    def list(
        self,
        workflow: Any = None,
        status: Any = None,
        tag: Any = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[Info]:
        found = self._matching(workflow, status, tag)
        if after is not None:
            found = found[[i.cursor for i in found].index(after) + 1 :]
        return found[:limit]

    def count_by_status(self, workflow: Any = None, tag: Any = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for info in self._matching(workflow, None, tag):
            counts[info.status] = counts.get(info.status, 0) + 1
        return counts

    def get_workflow(self, cls: Any, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)


class FakeBackend:
    namespace = "fake"

    def __init__(self, infos: list[Info]) -> None:
        self.client = FakeClient(infos)
        self.index_runs = True

    def require_index(self) -> None:
        if not self.index_runs:
            raise NotRunning("no visibility index runs for namespace 'fake'")

    def require_engine(self) -> None:
        pass


def workflows() -> list[Info]:
    return [
        Info("w-1", "Orders", status="FAILED", error="ValueError: no stock", traceback="  boom"),
        Info("w-2", status="COMPLETED", result={"ok": True}, updated_at=T0 + timedelta(1)),
        Info("w-3", name="Billing", tags=("customer:7",), updated_at=T0 + timedelta(2)),
        Info("<script>alert(1)</script>", updated_at=T0 + timedelta(3)),
    ]


def client_of(guard: Guard | None = None, **options: Any) -> TestClient:
    backend = FakeBackend(workflows())
    app = create_app(backend, guard or Guard())
    return TestClient(app, base_url="http://127.0.0.1:8080", **options)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


# -- binding and the token -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "dashboard.example.com"])
def test_any_other_address_needs_a_token(host: str) -> None:
    with pytest.raises(InsecureBind, match="give it a token"):
        check_bind(host, None)
    check_bind(host, TOKEN)


def test_the_command_refuses_to_serve_off_loopback_without_a_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["dashboard", "--host", "0.0.0.0", "--bootstrap", "127.0.0.1:1", "-n", "x"]
    )
    assert result.exit_code == 1
    assert "give it a token (--token T" in result.stderr
    assert "[dashboard]" in result.stderr


def test_the_token_may_come_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)  # no Kafka: it stops at that check
    config = tmp_path / "infinitic.toml"
    config.write_text('[kafka]\n"bootstrap.servers" = "127.0.0.1:1"\n\n[dashboard]\ntoken = "T"\n')
    result = CliRunner().invoke(cli_app, ["dashboard", "--host", "0.0.0.0", "-c", str(config)])
    assert result.exit_code == 1
    assert "does not answer" in result.stderr  # past the token check, at the Kafka one
    config.write_text('[kafka]\n"bootstrap.servers" = "127.0.0.1:1"\n\n[dashboard]\ntokn = "T"\n')
    result = CliRunner().invoke(cli_app, ["dashboard", "-c", str(config)])
    assert result.exit_code == 1
    assert "unknown key 'tokn' in [dashboard]; did you mean 'token'?" in result.stderr


def test_without_the_token_every_request_is_refused() -> None:
    http = client_of(Guard(TOKEN), follow_redirects=False)
    for path in ("/workflows", "/workflows/live", "/workflow?id=w-1", "/static/style.css"):
        response = http.get(path)
        assert response.status_code == 401, path
        assert "needs its token" in response.text
    assert http.get("/workflows", params={"token": "wrong"}).status_code == 401
    assert http.get("/workflows", params={"token": "é"}).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert http.get("/workflows", headers=wrong).status_code == 401
    assert http.post("/workflow/retry", data={"id": "w-1"}).status_code == 401


def test_the_token_comes_as_a_bearer_or_once_in_the_url_then_in_a_cookie() -> None:
    http = client_of(Guard(TOKEN), follow_redirects=False)
    assert http.get("/workflows", headers={"Authorization": f"Bearer {TOKEN}"}).is_success
    first = http.get("/workflows", params={"token": TOKEN, "status": "FAILED"})
    assert first.status_code == 303
    assert first.headers["location"] == "/workflows?status=FAILED"  # the token left the URL
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = http.get("/workflows?status=FAILED")  # the cookie now
    assert page.status_code == 200
    assert "w-1" in page.text and "w-2" not in page.text


# -- cross-site protection -------------------------------------------------------------------


def test_a_post_needs_the_csrf_token_of_the_page() -> None:
    http = client_of(follow_redirects=False)
    backend_client = http.app.state.backend.client  # type: ignore[attr-defined]
    page = http.get("/workflow", params={"id": "w-1"})
    token = csrf_of(page.text)
    assert http.post("/workflow/retry", data={"id": "w-1"}).status_code == 403
    assert http.post("/workflow/retry", data={"id": "w-1", "csrf": "forged"}).status_code == 403
    assert http.post("/workflow/retry", data={"id": "w-1", "csrf": "é"}).status_code == 403
    assert backend_client.done == []
    done = http.post("/workflow/retry", data={"id": "w-1", "csrf": token})
    assert done.status_code == 303
    assert backend_client.done == [("retry", "w-1")]
    assert "Retry sent" in http.get(done.headers["location"]).text  # shown once
    assert "Retry sent" not in http.get(done.headers["location"]).text


def test_a_csrf_token_is_worth_nothing_with_another_browser_s_cookie() -> None:
    app_guard = Guard()
    first, second = client_of(app_guard), client_of(app_guard)
    token = csrf_of(first.get("/workflow", params={"id": "w-1"}).text)
    second.get("/workflows")  # a cookie of its own
    refused = second.post("/workflow/cancel", data={"id": "w-1", "csrf": token})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
)
def test_a_cross_site_post_is_refused_even_with_the_csrf_token(headers: dict[str, str]) -> None:
    http = client_of(follow_redirects=False)
    token = csrf_of(http.get("/workflow", params={"id": "w-1"}).text)
    refused = http.post("/workflow/cancel", data={"id": "w-1", "csrf": token}, headers=headers)
    assert refused.status_code == 403
    assert "refused" in refused.text
    assert http.app.state.backend.client.done == []  # type: ignore[attr-defined]
    same = {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8080"}
    accepted = http.post("/workflow/cancel", data={"id": "w-1", "csrf": token}, headers=same)
    assert accepted.status_code == 303


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "10.0.0.1:8080"])
def test_without_a_token_only_a_loopback_host_is_answered(host: str) -> None:
    """A page of a site whose name was pointed at 127.0.0.1 (DNS rebinding) reads nothing."""
    http = client_of()
    refused = http.get("/workflows", headers={"Host": host})
    assert refused.status_code == 403
    for allowed in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost"):
        assert http.get("/workflows", headers={"Host": allowed}).status_code == 200
    with_token = client_of(Guard(TOKEN))
    answered = with_token.get(
        "/workflows", headers={"Host": host, "Authorization": f"Bearer {TOKEN}"}
    )
    assert answered.status_code == 200


def test_every_post_route_checks_the_csrf_token() -> None:
    http = client_of(follow_redirects=False)
    http.get("/workflows")
    posts = [
        r.path
        for r in http.app.routes  # type: ignore[attr-defined]
        if isinstance(r, Route) and "POST" in (r.methods or ())
    ]
    assert len(posts) >= 6
    for path in posts:
        assert http.post(path, data={"id": "w-1"}).status_code == 403, path
        assert http.get(path).status_code == 405, path


def test_every_response_forbids_framing_and_inline_scripts() -> None:
    http = client_of()
    for path in ("/workflows", "/workflow?id=w-1", "/workflow?id=nope", "/static/live.js"):
        headers = http.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY"


# -- pages from a fake client ----------------------------------------------------------------


def test_the_workflows_page_filters_counts_and_escapes() -> None:
    http = client_of()
    page = http.get("/workflows").text
    assert page.index("&lt;script&gt;") < page.index("w-3") < page.index("w-2")  # newest first
    assert "<script>alert" not in page
    assert re.search(r"FAILED <b>1</b>", page) and re.search(r"all <b>4</b>", page)
    billing = http.get("/workflows", params={"workflow": "Billing"}).text
    assert "w-3" in billing and "w-1" not in billing
    tagged = http.get("/workflows/live", params={"tag": "customer:7"}).text
    assert "w-3" in tagged and "w-2" not in tagged and "<html" not in tagged


def test_without_a_visibility_index_the_page_says_so_and_keeps_polling() -> None:
    http = client_of()
    http.app.state.backend.index_runs = False  # type: ignore[attr-defined]
    page = http.get("/workflows", params={"tag": "x"})
    assert page.status_code == 200
    assert "no visibility index runs" in page.text
    assert 'data-live="/workflows/live?tag=x"' in page.text
    live = http.get("/workflows/live", params={"tag": "x"})
    assert live.status_code == 200 and "no visibility index runs" in live.text
    http.app.state.backend.index_runs = True  # type: ignore[attr-defined]
    assert "w-1" in http.get("/workflows/live").text


def test_paging_follows_the_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infinitic_streams.dashboard.workflows.PAGE_SIZE", 2)
    http = client_of()
    first = http.get("/workflows").text
    next_link = re.search(r'id="next-page" href="([^"]+)"', first)
    assert next_link
    second = http.get(next_link.group(1).replace("&amp;", "&")).text
    rows = re.findall(r'<tr class="workflow" data-id="([^"]+)"', second)
    assert rows == ["w-2", "w-1"]


def test_retry_all_acts_on_each_failed_workflow_of_the_selection() -> None:
    http = client_of(follow_redirects=False)
    token = csrf_of(http.get("/workflows").text)
    done = http.post("/workflows/retry-all", data={"csrf": token, "workflow": "Orders"})
    assert done.status_code == 303
    assert http.app.state.backend.client.done == [("retry", "w-1")]  # type: ignore[attr-defined]
    cancel = http.post("/workflows/cancel-all", data={"csrf": token, "status": "RUNNING"})
    assert cancel.status_code == 303
    canceled = {d[1] for d in http.app.state.backend.client.done if d[0] == "cancel"}  # type: ignore[attr-defined]
    assert canceled == {"w-3", "<script>alert(1)</script>"}


def test_the_workflow_page_shows_the_error_and_its_traceback() -> None:
    http = client_of()
    page = http.get("/workflow", params={"id": "w-1"}).text
    assert "ValueError: no stock" in page and "  boom" in page
    assert 'id="retry"' in page and 'id="cancel"' in page
    completed = http.get("/workflow", params={"id": "w-2"}).text
    assert "&#34;ok&#34;: true" in completed and 'id="retry"' not in completed
    assert http.get("/workflow", params={"id": "nope"}).status_code == 404


def test_a_signal_value_must_be_json() -> None:
    http = client_of()
    token = csrf_of(http.get("/workflow", params={"id": "w-3"}).text)
    form = {"csrf": token, "id": "w-3", "channel": "approvals", "value": "not json"}
    assert "The value is not JSON" in http.post("/workflow/signal", data=form).text
    form["value"] = '{"ok": 1}'
    http.post("/workflow/signal", data=form)
    done = http.app.state.backend.client.done  # type: ignore[attr-defined]
    assert done == [("signal", "w-3", "approvals", {"ok": 1})]


def test_partitions_are_shown_as_ranges() -> None:
    spans = partition_ranges([("e", 0), ("e", 1), ("e", 2), ("e", 5), ("t", 3)])
    assert spans == ["e[0-2,5]", "t[3]"]


def test_throughput_comes_from_committed_offsets_sampled_over_time() -> None:
    rates = Rates(window_s=60.0)
    assert rates.observe("g", 100, now=0.0) is None
    assert rates.observe("g", 150, now=10.0) == 5.0
    assert rates.observe("g", 250, now=20.0) == 7.5
    assert rates.observe("g", 250, now=100.0) is not None  # the window moves on


# -- import rules ----------------------------------------------------------------------------


def test_the_dashboard_reads_through_the_client_and_kafka_metadata_only() -> None:
    forbidden = ("infinitic_streams.engine", "infinitic_streams.streams.state", "confluent_kafka")
    offenders = []
    for path in [*sorted((PACKAGE / "dashboard").rglob("*.py")), PACKAGE / "dead_letters.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(forbidden)]
    assert offenders == []
