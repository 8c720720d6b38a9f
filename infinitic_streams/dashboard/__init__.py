"""The web dashboard: workflows (filters, counts, live), one workflow (details, history,
actions), dead letters (send again), engines and workers (groups, lag, throughput).

Starlette + Jinja2 rendered on the server, served by uvicorn; a few lines of plain JS poll
fragments for live updates. It reads through `InfiniticClient` and Kafka's metadata only.
`infinitic-streams dashboard` serves it (`cli/dashboard.py`); `security.py` says who may."""

from infinitic_streams.dashboard.app import create_app
from infinitic_streams.dashboard.backend import Backend
from infinitic_streams.dashboard.security import Guard, InsecureBind, check_bind
from infinitic_streams.dashboard.server import DashboardServer

__all__ = ["Backend", "DashboardServer", "Guard", "InsecureBind", "check_bind", "create_app"]
