"""One workflow's page: status, arguments, result or error with its traceback, pending work,
children, signals waiting, the history as a timeline (refreshed live); and its actions: retry,
cancel, send a signal. The workflow's id is a query parameter (ids may hold any character)."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infinitic_streams.dashboard import views
from infinitic_streams.dashboard.rendering import problem, redirect, render
from infinitic_streams.errors import InfiniticError, WorkflowNotFound

HISTORY_SHOWN = 1000  # the most recent events a timeline shows


def page(request: Request) -> Response:
    return _show(request, "workflow.html")


def live(request: Request) -> Response:
    return _show(request, "_workflow_live.html")


def _show(request: Request, template: str) -> Response:
    workflow_id = request.query_params.get("id", "")
    if not workflow_id:
        return problem(request, "No workflow", "The address names no workflow (?id=...).", 404)
    backend = request.app.state.backend
    backend.require_engine()
    handle = backend.client.get_workflow(None, workflow_id)
    try:
        info = handle.describe()
        history = handle.history()
    except WorkflowNotFound:
        message = (
            f"No workflow {workflow_id!r} in namespace {backend.namespace!r}: it never "
            "existed, or its retention is over."
        )
        if template.startswith("_"):  # a live fragment: said in place
            return render(request, "_unavailable.html", {"message": message})
        return problem(request, "Workflow not found", message, 404)
    return render(request, template, _context(info, history))


def _context(info: Any, history: list[dict[str, Any]]) -> dict[str, Any]:
    status = views.status_text(info.status)
    shown = history[-HISTORY_SHOWN:]
    return {
        "info": info,
        "status": status,
        "args": [views.as_json(a) for a in info.args],
        "result": views.as_json(info.result) if status == "COMPLETED" else None,
        "children": [(cid, name, views.status_text(s)) for cid, name, s in info.children],
        "events": [_event(e, info.started_at) for e in shown],
        "events_hidden": len(history) - len(shown),
        "can_retry": status == "FAILED",
        "can_cancel": status in ("RUNNING", "FAILED"),
    }


def _event(event: dict[str, Any], start: Any) -> dict[str, Any]:
    return {
        "at": event["at"],
        "offset": views.offset_from(event["at"], start),
        "name": event["event"],
        "kind": views.event_kind(event),
        "fields": list(views.event_fields(event)),
        "traceback": views.event_traceback(event),
    }


async def retry(request: Request) -> Response:
    form = await request.app.state.guard.form(request)
    workflow_id = str(form.get("id", ""))
    handle = request.app.state.backend.client.get_workflow(None, workflow_id)
    try:
        await run_in_threadpool(handle.retry)
    except InfiniticError as error:
        return _back(request, workflow_id, f"Retry failed: {error}", "error")
    return _back(request, workflow_id, "Retry sent: the failed tasks run again.")


async def cancel(request: Request) -> Response:
    form = await request.app.state.guard.form(request)
    workflow_id = str(form.get("id", ""))
    handle = request.app.state.backend.client.get_workflow(None, workflow_id)
    try:
        canceled = await run_in_threadpool(handle.cancel, "canceled from the dashboard")
    except (InfiniticError, TimeoutError) as error:
        return _back(request, workflow_id, f"Cancel failed: {error}", "error")
    if not canceled:
        return _back(request, workflow_id, "It had already ended: nothing changed.")
    return _back(request, workflow_id, "Canceled.")


async def signal(request: Request) -> Response:
    form = await request.app.state.guard.form(request)
    workflow_id = str(form.get("id", ""))
    channel = str(form.get("channel", "")).strip()
    text = str(form.get("value", "")).strip() or "null"
    if not channel:
        return _back(request, workflow_id, "Name the channel to send the signal to.", "error")
    try:
        value = json.loads(text)
    except ValueError as error:
        return _back(request, workflow_id, f"The value is not JSON ({error}): {text}", "error")
    handle = request.app.state.backend.client.get_workflow(None, workflow_id)
    try:
        await run_in_threadpool(handle.signal, channel, value)
    except (InfiniticError, TimeoutError) as error:
        return _back(request, workflow_id, f"Signal refused: {error}", "error")
    return _back(request, workflow_id, f"Signal recorded on channel {channel!r}.")


def _back(request: Request, workflow_id: str, text: str, kind: str = "info") -> Response:
    return redirect(request, "/workflow", text, kind, id=workflow_id)


routes = [
    Route("/workflow", page),
    Route("/workflow/live", live),
    Route("/workflow/retry", retry, methods=["POST"]),
    Route("/workflow/cancel", cancel, methods=["POST"]),
    Route("/workflow/signal", signal, methods=["POST"]),
]
