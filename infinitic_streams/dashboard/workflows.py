"""The workflows page: a selection (name, status, tag), its counts per status, its workflows
newest first a page at a time (the cursor of the last one), refreshed live; and the actions on
the whole selection ("retry all" its failed workflows, "cancel all" its running and failed ones),
which go through `client.list` page after page and act on each workflow."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infinitic_streams.dashboard.rendering import query, redirect, render
from infinitic_streams.dashboard.views import STATUSES
from infinitic_streams.errors import InfiniticError

PAGE_SIZE = 50
BULK_PAGE = 200
BULK_CONCURRENCY = 16  # actions in flight at once in a "retry all" / "cancel all"
BULK_LIMIT = 100_000


@dataclass(frozen=True)
class Selection:
    """The workflows the page shows: the filters of its form (GET params, or a POSTed form)."""

    workflow: str | None = None
    status: str | None = None
    tag: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> Selection:
        def text(name: str) -> str | None:
            value = params.get(name)
            return value.strip() or None if isinstance(value, str) else None

        status = (text("status") or "").upper()
        return cls(text("workflow"), status if status in STATUSES else None, text("tag"))

    def query(self, **changes: str | None) -> str:
        """The query string of this selection with `changes` (a None drops a parameter)."""
        params = {"workflow": self.workflow, "status": self.status, "tag": self.tag}
        return query(**{**params, **changes})

    def retriable(self) -> list[str]:
        """The statuses "retry all" acts on within this selection."""
        return [s for s in ("FAILED",) if self.status in (None, s)]

    def cancelable(self) -> list[str]:
        return [s for s in ("RUNNING", "FAILED") if self.status in (None, s)]


def page(request: Request) -> Response:
    try:
        context = _context(request)
    except (InfiniticError, TimeoutError) as error:  # the page, and its live part says why
        selection = Selection.of(request.query_params)
        after = request.query_params.get("after") or None
        context = {
            "selection": selection,
            "statuses": STATUSES,
            "live_query": selection.query(after=after),
            "message": f"{type(error).__name__}: {error}",
        }
    return render(request, "workflows.html", context)


def live(request: Request) -> Response:
    return render(request, "_workflows_live.html", _context(request))


def _context(request: Request) -> dict[str, Any]:
    selection = Selection.of(request.query_params)
    after = request.query_params.get("after") or None
    backend = request.app.state.backend
    backend.require_index()
    client = backend.client
    found = client.list(
        selection.workflow, selection.status, selection.tag, limit=PAGE_SIZE + 1, after=after
    )
    counts = client.count_by_status(selection.workflow, selection.tag)
    next_after = found[PAGE_SIZE - 1].cursor if len(found) > PAGE_SIZE else None
    return {
        "selection": selection,
        "workflows": found[:PAGE_SIZE],
        "counts": {status: counts.get(status, 0) for status in STATUSES},
        "total": sum(counts.values()),
        "after": after,
        "next_query": selection.query(after=next_after) if next_after else None,
        "live_query": selection.query(after=after),
        "statuses": STATUSES,
        "can_retry_all": sum(counts.get(s, 0) for s in selection.retriable()),
        "can_cancel_all": sum(counts.get(s, 0) for s in selection.cancelable()),
    }


async def retry_all(request: Request) -> Response:
    form = await request.app.state.guard.form(request)
    selection = Selection.of(form)
    client = request.app.state.backend.client
    act = _retry
    done, errors = await run_in_threadpool(_each, client, selection, selection.retriable(), act)
    return _outcome(request, selection, "Retry sent to", done, errors)


async def cancel_all(request: Request) -> Response:
    form = await request.app.state.guard.form(request)
    selection = Selection.of(form)
    client = request.app.state.backend.client
    act = _cancel
    done, errors = await run_in_threadpool(_each, client, selection, selection.cancelable(), act)
    return _outcome(request, selection, "Canceled", done, errors)


def _retry(handle: Any) -> None:
    handle.retry()


def _cancel(handle: Any) -> None:
    handle.cancel()


def _outcome(
    request: Request, selection: Selection, what: str, done: int, errors: list[str]
) -> Response:
    text = f"{what} {done} workflow(s)."
    if errors:
        text += f" {len(errors)} failed, e.g. {errors[0]}"
    params = {"workflow": selection.workflow, "status": selection.status, "tag": selection.tag}
    kind = "error" if errors else "info"
    return redirect(request, "/workflows", text, kind, **{k: v for k, v in params.items() if v})


def _each(
    client: Any, selection: Selection, statuses: list[str], act: Callable[[Any], Any]
) -> tuple[int, list[str]]:
    """Act on every workflow of the selection in these statuses; (how many, the errors)."""

    def one(workflow_id: str) -> str | None:
        try:
            act(client.get_workflow(None, workflow_id))
        except (InfiniticError, TimeoutError) as error:
            return f"{workflow_id}: {type(error).__name__}: {error}"
        return None

    ids = list(_ids(client, selection, statuses))
    with ThreadPoolExecutor(BULK_CONCURRENCY, thread_name_prefix="dashboard-bulk") as pool:
        errors = [error for error in pool.map(one, ids) if error is not None]
    return len(ids) - len(errors), errors


def _ids(client: Any, selection: Selection, statuses: list[str]) -> Iterator[str]:
    """The ids of the selection's workflows in these statuses, each once, page after page."""
    seen: set[str] = set()
    for status in statuses:
        after = None
        while len(seen) < BULK_LIMIT:
            found = client.list(
                selection.workflow, status, selection.tag, limit=BULK_PAGE, after=after
            )
            for info in found:
                if info.id not in seen:
                    seen.add(info.id)
                    yield info.id
            if len(found) < BULK_PAGE:
                break
            after = found[-1].cursor


routes = [
    Route("/workflows", page),
    Route("/workflows/live", live),
    Route("/workflows/retry-all", retry_all, methods=["POST"]),
    Route("/workflows/cancel-all", cancel_all, methods=["POST"]),
]
