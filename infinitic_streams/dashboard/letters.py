"""The dead letters page: every record of `<ns>.dlq`, newest first (reason, source
topic/partition/offset, time, a preview of the payload), and "send again" for one that came
from the engine topic, once the cause of its failure is fixed."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infinitic_streams.dashboard.rendering import redirect, render
from infinitic_streams.errors import InfiniticError

SHOWN = 500  # the most recent letters the page lists


def page(request: Request) -> Response:
    return render(request, "letters.html", _context(request))


def live(request: Request) -> Response:
    return render(request, "_letters_live.html", _context(request))


def _context(request: Request) -> dict[str, Any]:
    box = request.app.state.backend.letters
    letters = box.letters()
    return {
        "topic": box.topic,
        "engine_topic": box.topics.engine,
        "letters": [
            {
                "letter": letter,
                "can_send_again": box.can_send_again(letter),
                "sent_again": box.sent_again.get((letter.partition, letter.offset)),
            }
            for letter in letters[:SHOWN]
        ],
        "total": len(letters),
        "hidden": max(0, len(letters) - SHOWN),
    }


async def send_again(request: Request) -> Response:
    form = await request.app.state.guard.form(request)
    try:
        partition, offset = int(str(form.get("partition"))), int(str(form.get("offset")))
    except ValueError:
        return redirect(request, "/dead-letters", "Which dead letter? (partition, offset)", "error")
    box = request.app.state.backend.letters
    try:
        letter = await run_in_threadpool(box.send_again, partition, offset)
    except (InfiniticError, TimeoutError) as error:
        return redirect(request, "/dead-letters", f"Not sent again: {error}", "error")
    text = f"Sent {letter.where} again to {letter.source_topic} (key {letter.key_text})."
    return redirect(request, "/dead-letters", text)


routes = [
    Route("/dead-letters", page),
    Route("/dead-letters/live", live),
    Route("/dead-letters/send-again", send_again, methods=["POST"]),
]
