"""`infinitic-streams dashboard`: the web dashboard of a namespace, until Ctrl-C or SIGTERM.

It binds 127.0.0.1 by default; any other address needs a token (--token,
$INFINITIC_DASHBOARD_TOKEN or `token` under [dashboard] in infinitic.toml), which every request
must then carry (see `dashboard/security.py`). `dev` starts one too (`start_for_dev`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

import typer

from infinitic_streams.cli.common import fail, load_settings, require_kafka, warn
from infinitic_streams.cli.options import (
    DEFAULT_CONFIG,
    Bootstrap,
    ConfigPath,
    LogFormat,
    LogFormatOption,
    LogLevel,
    Namespace,
    configure_logging,
)
from infinitic_streams.config import InfiniticConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

Host = Annotated[
    str,
    typer.Option(
        metavar="ADDRESS",
        help="The address to listen on; any but loopback requires a token.",
    ),
]
Port = Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="0: any free port.")]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="INFINITIC_DASHBOARD_TOKEN",
        metavar="TOKEN",
        help="Every request must carry it (first visit: the URL printed, ending ?token=...). "
        "Default: [dashboard] token of the configuration.",
    ),
]


def dashboard(
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    token: Token = None,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    log_level: LogLevel = "WARNING",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Serve the web dashboard: workflows, their history and actions, dead letters, engines.

    Until SIGTERM or Ctrl-C."""
    from infinitic_streams.dashboard import DashboardServer, Guard, InsecureBind, check_bind
    from infinitic_streams.dashboard.server import serve_until_signal

    configure_logging(log_level, log_format)
    settings = load_settings(config, namespace, bootstrap)
    token = token or settings.dashboard.token
    try:
        check_bind(host, token)
    except InsecureBind as error:
        raise fail(str(error)) from None
    address = require_kafka(settings, config)
    backend, app = _app(settings.kafka, settings, Guard(token))
    try:
        server = DashboardServer(app, host, port)
    except OSError as error:
        backend.close()
        raise fail(f"Cannot listen on {host}:{port}: {error}. Choose another --port.") from None
    typer.echo(f"Dashboard of namespace {settings.namespace!r} on Kafka {address}:")
    typer.echo(f"  {url_of(server.url, token)}")
    typer.echo("Stop with Ctrl-C or SIGTERM.")
    try:
        serve_until_signal(server)
    finally:
        backend.close()
    typer.echo("Stopped.")


def url_of(base: str, token: str | None) -> str:
    """The URL to open: with the token for a first visit (it then lives in a cookie)."""
    return f"{base}/?token={quote(token, safe='')}" if token else f"{base}/"


def _app(kafka: Mapping[str, Any], settings: InfiniticConfig, guard: Any) -> tuple[Any, Any]:
    from infinitic_streams.dashboard import Backend, create_app

    backend = Backend(kafka, settings.namespace, settings.partitions, settings.max_payload_bytes)
    return backend, create_app(backend, guard)


class DevDashboard:
    """The dashboard `dev` runs beside its worker, on 127.0.0.1 (no token)."""

    def __init__(self, server: Any, backend: Any) -> None:
        self.server, self.backend = server, backend

    def stop(self) -> None:
        self.server.stop()
        self.backend.close()


def start_for_dev(
    kafka: Mapping[str, Any], settings: InfiniticConfig, port: int
) -> DevDashboard | None:
    """Start the dashboard for `dev` and print its URL; None (with a warning) when its port is
    taken: the worker runs anyway."""
    from infinitic_streams.dashboard import DashboardServer, Guard

    backend, app = _app(kafka, settings, Guard(settings.dashboard.token))
    try:
        server = DashboardServer(app, DEFAULT_HOST, port).start()
    except (OSError, RuntimeError) as error:
        backend.close()
        warn(f"No dashboard: cannot listen on {DEFAULT_HOST}:{port} ({error}); --dashboard-port")
        return None
    typer.echo(f"Dashboard: {url_of(server.url, settings.dashboard.token)}")
    return DevDashboard(server, backend)
