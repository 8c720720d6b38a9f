"""deploy/ checked as a user would rely on it, without a cluster or docker:

- every Kubernetes manifest validates against the schemas of a current Kubernetes release
  (kubernetes-validate, which ships them: no network), strictly (an unknown field is an error);
  the custom resources (PodMonitor, PrometheusRule, ScaledObject), which it has no schema for,
  are checked by structure and against the rest; the kustomization builds (kustomize, or
  kubectl's built-in one) and its output validates too;
- every container's command parses with the real `infinitic-streams` command line, with the
  manifests' environment, and the files, ports and names they use agree with each other and
  with infinitic.toml (state dir, metrics port, probes, consumer groups and topics for KEDA);
- the Grafana board and the alert rules parse (PromQL by a real parser, promql-parser) and
  name only metrics, and labels, that the project exports: taken from the metric classes
  themselves, exercised in a registry of their own;
- docker-compose.yml validates against the Compose specification's schema (shipped by
  check-jsonschema) and runs the same commands as the manifests; the Dockerfile installs what
  the configuration imports.

The last test (marked kafka) runs the pods' commands as local processes, exactly as the
manifests give them, through a workflow and an engine restart, and checks that every metric
the board and the alerts use is in their /metrics.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import typer.main
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from examples.images import ImageWorkflow
from infinitic_streams import InfiniticClient, InfiniticError
from infinitic_streams.cli.app import app
from infinitic_streams.config import InfiniticConfig, import_object
from infinitic_streams.definitions import service_spec
from infinitic_streams.engine.metrics import EngineMetrics
from infinitic_streams.streams.metrics import StreamMetrics
from infinitic_streams.topics import Topics
from infinitic_streams.worker.task_metrics import TaskMetrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SECURE = DEPLOY / "k8s-secure"
KUBERNETES = kubernetes_validate.latest_version()  # the newest release it ships schemas of
CUSTOM = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}
CONFIG_PATH = "/etc/infinitic/infinitic.toml"
TARGET_LABELS = {"instance", "job", "pod"}  # the scrape's, not the process's
GRAFANA_RANGES = ("$__rate_interval", "$__interval", "$__range")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


# -- the manifests ---------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def manifests() -> list[dict[str, Any]]:
    """Every resource kustomization.yaml lists, in its order."""
    found = []
    for name in kustomization()["resources"]:
        found += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return found


def resource(kind: str, name: str) -> dict[str, Any]:
    matches = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} in the manifests"
    return matches[0]


def workloads(docs: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Pod templates by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]
        for doc in (manifests() if docs is None else docs)
        if doc["kind"] in ("StatefulSet", "Deployment", "Job")
    }


def container(workload: str) -> dict[str, Any]:
    (only,) = workloads()[workload]["spec"]["containers"]
    return only


def load_config(path: Path) -> InfiniticConfig:
    """The file as it is: $INFINITIC_KAFKA (which `make test` sets) not replacing its
    bootstrap servers."""
    saved = os.environ.pop("INFINITIC_KAFKA", None)
    try:
        return InfiniticConfig.load(path)
    finally:
        if saved is not None:
            os.environ["INFINITIC_KAFKA"] = saved


def k8s_config() -> InfiniticConfig:
    return load_config(K8S / "infinitic.toml")


def validation_errors(docs: list[dict[str, Any]]) -> list[str]:
    errors = []
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{doc['kind']} {doc['metadata']['name']}: {path}: {error.message}")
    return errors


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    docs = manifests()
    assert validation_errors(docs) == []
    kinds = {doc["kind"] for doc in docs}
    assert {"StatefulSet", "Deployment", "Job", "Service", "PodDisruptionBudget"} <= kinds
    assert {"PodMonitor", "PrometheusRule", "ScaledObject"} <= kinds


def test_the_validator_refuses_what_kubernetes_would() -> None:
    """Not a validator that passes anything: a misspelt field and a wrong type are caught."""
    engine = resource("StatefulSet", "infinitic-engine")
    misspelt = copy.deepcopy(engine)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    wrong_type = copy.deepcopy(engine)
    wrong_type["spec"]["replicas"] = "two"
    no_selector = copy.deepcopy(engine)
    del no_selector["spec"]["selector"]
    errors = validation_errors([misspelt, wrong_type, no_selector])
    assert len(errors) == 3, errors
    assert "readynessProbe" in errors[0]


def test_the_kustomization_lists_every_manifest_and_its_files_parse() -> None:
    listed = kustomization()["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present, "a manifest not in kustomization.yaml is never applied"
    for doc in manifests():
        assert doc["metadata"]["name"].startswith("infinitic"), doc["metadata"]
        assert "namespace" not in doc["metadata"], "kustomization.yaml sets the namespace"
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["name"] == "infinitic-config"
    for file in generator["files"]:
        tomllib.loads((K8S / file.split("=")[-1]).read_text())
    (image,) = kustomization()["images"]
    names = {c["image"] for t in workloads().values() for c in t["spec"]["containers"]}
    assert names == {image["name"]}


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """The resources `kustomize build directory` makes (kustomize, or kubectl's own);
    the test is skipped where neither is installed (the parts are checked anyway)."""
    if path := shutil.which("kustomize"):
        command = [path, "build", str(directory)]
    elif path := shutil.which("kubectl"):
        command = [path, "kustomize", str(directory)]
    else:
        pytest.skip("neither kustomize nor kubectl here: the kustomization was checked by parts")
    built = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def test_the_kustomization_builds_and_its_output_validates() -> None:
    docs = kustomize_build(K8S)
    assert validation_errors(docs) == []
    assert len(docs) == len(manifests()) + 1  # and the generated ConfigMap
    (config_map,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    assert config_map["data"]["infinitic.toml"] == (K8S / "infinitic.toml").read_text()
    image = kustomization()["images"][0]
    for name, template in workloads(docs).items():
        spec = template["spec"]
        assert spec["containers"][0]["image"] == f"{image['newName']}:{image['newTag']}", name
        mounted = {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
        assert mounted == {config_map["metadata"]["name"]}, f"{name} mounts the generated map"
    namespaces = {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"}
    assert namespaces == {kustomization()["namespace"]}


def test_the_secure_overlay_only_adds_tls_and_sasl() -> None:
    """deploy/k8s-secure: the same configuration plus the [kafka] security settings, kept in
    a Secret; the CA mounted where the configuration reads it; KEDA the same way."""
    base, secure = k8s_config(), load_config(SECURE / "infinitic.toml")
    assert secure.kafka.pop("security.protocol") == "SASL_SSL"
    assert secure.kafka.pop("sasl.mechanism").startswith("SCRAM-")
    assert {secure.kafka.pop("sasl.username"), secure.kafka.pop("sasl.password")}
    ca = Path(secure.kafka.pop("ssl.ca.location"))
    bootstrap = secure.kafka["bootstrap.servers"]
    secure.kafka["bootstrap.servers"] = base.kafka["bootstrap.servers"]
    assert secure == base
    overlay = yaml.safe_load((SECURE / "kustomization.yaml").read_text())
    for name in overlay["resources"]:
        assert (SECURE / name).exists(), name
    authentication = yaml.safe_load((SECURE / "keda-trigger-authentication.yaml").read_text())
    references = authentication["spec"]["secretTargetRef"]
    (kafka_secret,) = {ref["name"] for ref in references}
    assert {ref["key"] for ref in references} == {"username", "password", ca.name}
    docs = kustomize_build(SECURE)
    assert validation_errors(docs) == []
    assert "ConfigMap" not in {doc["kind"] for doc in docs}
    (config,) = [doc for doc in docs if doc["kind"] == "Secret"]
    assert set(config["data"]) == {"infinitic.toml"}
    for name, template in workloads(docs).items():
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        (spec,) = template["spec"]["containers"]
        mounts = {m["mountPath"]: volumes.get(m["name"], {}) for m in spec["volumeMounts"]}
        secret = mounts[str(Path(CONFIG_PATH).parent)]["secret"]
        assert secret["secretName"] == config["metadata"]["name"], name
        tls = mounts[str(ca.parent)]["secret"]
        assert tls == {"secretName": kafka_secret, "items": [{"key": ca.name, "path": ca.name}]}
    (scaled,) = [doc for doc in docs if doc["kind"] == "ScaledObject"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["bootstrapServers"] == bootstrap
    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "enable")


# -- commands, files and ports ---------------------------------------------------------------


def parse_command(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """(command name, its parameters) as `infinitic-streams` parses `args` with `env`, or a
    usage error. Parsing only: nothing runs."""
    for name in [n for n in os.environ if n.startswith("INFINITIC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    command: Any = typer.main.get_command(app)
    rest, parent, name = list(args), None, "infinitic-streams"
    while True:
        context = command.make_context(name, rest, parent=parent)
        if not hasattr(command, "resolve_command"):
            return command.name, context.params
        pending = getattr(context, "_protected_args", None) or context.protected_args
        name, command, rest = command.resolve_command(context, [*pending, *context.args])
        parent = context


def container_env(spec: dict[str, Any], pod_name: str) -> dict[str, str]:
    """A container's environment as the kubelet gives it (a Secret's value made up)."""
    env = {}
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = f"secret {item['valueFrom']['secretKeyRef']['key']}"
        else:
            raise AssertionError(f"unexpected env {item}")
    return env


def test_every_container_command_parses_with_the_real_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = {
        "infinitic-engine": "engine",
        "infinitic-worker": "worker",
        "infinitic-topics": "create",
        "infinitic-dashboard": "dashboard",
    }
    assert set(workloads()) == set(expected)
    for workload, template in workloads().items():
        spec = container(workload)
        assert "command" not in spec, "the image's entry point is infinitic-streams"
        env = container_env(spec, f"{workload}-0")
        name, params = parse_command(spec["args"], env, monkeypatch)
        assert name == expected[workload]
        assert str(params["config"]) == CONFIG_PATH
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        config = volumes[mounts[str(Path(CONFIG_PATH).parent)]]["configMap"]
        assert config["items"] == [{"key": "infinitic.toml", "path": Path(CONFIG_PATH).name}]
        if name in ("engine", "worker"):
            port = params["metrics_port"]
            (declared,) = spec["ports"]
            assert (declared["name"], declared["containerPort"]) == ("metrics", port)
            annotations = template["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(port)
            assert annotations["prometheus.io/path"] == "/metrics"
            assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
            assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert template["spec"]["terminationGracePeriodSeconds"] >= 60
    _, engine = parse_command(
        container("infinitic-engine")["args"],
        container_env(container("infinitic-engine"), "infinitic-engine-1"),
        monkeypatch,
    )
    assert engine["instance_id"] == "infinitic-engine-1", "the pod's name is its instance id"
    dashboard_spec = container("infinitic-dashboard")
    _, dashboard = parse_command(
        dashboard_spec["args"], container_env(dashboard_spec, "d"), monkeypatch
    )
    assert dashboard["token"] == "secret token" and dashboard["host"] == "0.0.0.0"
    (port,) = dashboard_spec["ports"]
    assert port["containerPort"] == dashboard["port"]
    service = resource("Service", "infinitic-dashboard")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_engines_keep_their_state_on_a_volume_per_pod() -> None:
    engine = resource("StatefulSet", "infinitic-engine")
    spec = engine["spec"]
    config = k8s_config()
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container("infinitic-engine")["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == config.worker.state_dir
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["replicas"] <= config.partitions
    # The headless Service the StatefulSet names, selecting its pods.
    service = resource("Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert config.metrics.host == "0.0.0.0", "probes and scrapes come from outside the pod"


def test_disruption_budgets_select_the_engines_and_the_workers() -> None:
    for name in ("infinitic-engine", "infinitic-worker"):
        budget = resource("PodDisruptionBudget", name)
        labels = workloads()[name]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["maxUnavailable"] == 1


def test_the_configurations_name_real_classes_and_agree() -> None:
    k8s, compose = k8s_config(), load_config(DEPLOY / "compose" / "infinitic.toml")
    for config in (k8s, compose):
        assert config.worker.engine is False, "worker pods run services only"
        assert config.worker.workflows and config.worker.services
        for reference in [*config.worker.workflows, *config.worker.services]:
            import_object(reference)  # the image has examples/ on its Python path
    k8s.kafka.pop("bootstrap.servers")
    compose.kafka.pop("bootstrap.servers")
    assert k8s == compose, "compose runs what Kubernetes runs, on another Kafka"


def test_keda_scales_the_workers_on_their_service_group_lag() -> None:
    scaled = resource("ScaledObject", "infinitic-worker")
    config = k8s_config()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "infinitic-worker"
    assert "replicas" not in resource("Deployment", "infinitic-worker")["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= config.partitions
    topics = Topics(config.namespace, config.partitions)
    triggers = {t["metadata"]["consumerGroup"]: t for t in spec["triggers"]}
    for reference in config.worker.services:
        name = service_spec(import_object(reference)).name
        trigger = triggers.pop(topics.service_group(name))
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["topic"] == topics.tasks(name)
        assert metadata["bootstrapServers"] == config.kafka["bootstrap.servers"]
        assert int(metadata["lagThreshold"]) > 0
        assert all(isinstance(v, str) for v in metadata.values()), "KEDA's metadata: strings"
    assert triggers == {}


def test_the_pod_monitor_scrapes_the_engines_and_workers_keeping_their_labels() -> None:
    monitor = resource("PodMonitor", "infinitic")
    selector = monitor["spec"]["selector"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    assert DURATION.match(endpoint["interval"])
    scraped = set()
    for name, template in workloads().items():
        labels = template["metadata"]["labels"]
        matched = selector["matchLabels"].items() <= labels.items() and all(
            labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"]
        )
        ports = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
        if matched:
            assert endpoint["port"] in ports, name
            scraped.add(name)
    assert scraped == {"infinitic-engine", "infinitic-worker"}
    for relabel in endpoint["relabelings"]:
        assert set(relabel) <= {"sourceLabels", "targetLabel", "regex", "replacement", "action"}


# -- metrics: what the project exports -------------------------------------------------------


class _Committed:
    """A `Context` whose transaction has committed: after_commit actions run at once."""

    def after_commit(self, action: Any) -> None:
        action()


def exported_metrics() -> dict[str, set[str]]:
    """Every sample name the project's metric classes export, with its label names: each
    public method exercised once in a registry of its own."""
    registry = CollectorRegistry()
    stream = StreamMetrics("ns", "engine", registry)
    for counter in (stream.processed, stream.aborts, stream.restore_records):
        counter.inc()
    stream.restore_seconds.inc(1.0)
    stream.timers_fired.inc()
    stream.batch_size.observe(3)
    stream.commit_latency.observe(0.01)
    stream.dead_letter("error")
    stream.track_partitions(lambda: 1, lambda: 0)
    stream.partition(0, keys=1, timers=1, lag=1)
    engine, ctx = EngineMetrics("ns", registry), _Committed()
    engine.started(ctx, "W")
    engine.ended(ctx, "W", "COMPLETED", 1.0)
    engine.task(ctx, "S", "m", "completed")
    engine.signal(ctx, "W", "received")
    engine.cache_hit(ctx)
    engine.replay(ctx, 3)
    tasks = TaskMetrics("ns", "S", 4, registry)
    tasks.started("m", 0.1)
    tasks.finished("m", "succeeded", 0.2)
    found: dict[str, set[str]] = {}
    for family in registry.collect():
        assert family.samples, f"{family.name} not exercised here"
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


def promql(expression: str) -> Any:
    """The parsed expression, Grafana's range variables replaced by a duration."""
    for variable in GRAFANA_RANGES:
        expression = expression.replace(variable, "5m")
    return promql_parser.parse(expression)


def selectors(node: Any) -> list[Any]:
    found: list[Any] = []

    def visit(n: Any) -> bool:
        if isinstance(n, promql_parser.VectorSelector):
            found.append(n)
        return True

    promql_parser.walk(node, visit)
    return found


def check_expression(expression: str, exported: dict[str, set[str]]) -> list[str]:
    """What is wrong with an expression: unknown metrics, labels the metric does not have,
    aggregations by labels none of their metrics has."""
    try:
        tree = promql(expression)
    except ValueError as error:
        return [f"does not parse: {error}: {expression}"]
    problems = []
    used = selectors(tree)
    if not used:
        problems.append(f"names no metric: {expression}")
    for selector in used:
        if selector.name not in exported:
            problems.append(f"{selector.name} is not exported")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in exported[selector.name] | TARGET_LABELS:
                problems.append(f"{selector.name} has no label {matcher.name}")
    aggregations: list[Any] = []
    promql_parser.walk(
        tree,
        lambda n: aggregations.append(n) if isinstance(n, promql_parser.AggregateExpr) else None,
    )
    for aggregation in aggregations:
        if aggregation.modifier is None:
            continue
        inside = set(TARGET_LABELS)
        for selector in selectors(aggregation):
            inside |= exported.get(selector.name, set())
        for label in aggregation.modifier.labels:
            if label not in inside:
                problems.append(f"aggregation by {label}: no such label in {expression}")
    return problems


def test_the_expression_check_catches_mistakes() -> None:
    exported = exported_metrics()
    ok = 'sum by (le) (rate(infinitic_commit_latency_seconds_bucket{processor="engine"}[5m]))'
    assert check_expression(ok, exported) == []
    assert check_expression("rate(infinitic_commit_latency_seconds[5m])", exported)
    assert check_expression("infinitic_workflows_started", exported)  # a counter: _total
    assert check_expression('infinitic_tasks_total{status="x"}', exported)
    assert check_expression("sum by (method) (infinitic_signals_total)", exported)
    assert check_expression("sum(rate(x[5m])", exported)


def grafana_board() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "infinitic.json").read_text())


def board_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels


def board_expressions(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the board: its panels' queries and its variables'."""
    found = [t["expr"] for p in board_panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"variable {variable['name']}: {query}"
        found.append(match.group(1))
    return found


def test_the_grafana_board_loads_and_names_only_exported_metrics() -> None:
    board = grafana_board()
    exported = exported_metrics()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    panels = list(board_panels(board))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        columns = range(grid["x"], grid["x"] + grid["w"])
        area = {(x, y) for x in columns for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for name in re.findall(r"\$\{?(\w+)", target["expr"]):
                assert name in variables or f"${name}" in GRAFANA_RANGES, (panel["title"], name)
    problems = [p for e in board_expressions(board) for p in check_expression(e, exported)]
    assert problems == []
    used = {s.name for e in board_expressions(board) for s in selectors(promql(e))}
    text = json.dumps(board)
    # What the board is for: throughput, latency percentiles, failures, lag, restore time,
    # cache, dead letters, tasks in flight.
    assert "histogram_quantile(0.99" in text and 'status=\\"FAILED\\"' in text
    assert {
        "infinitic_messages_processed_total",
        "infinitic_workflows_started_total",
        "infinitic_workflow_duration_seconds_bucket",
        "infinitic_task_duration_seconds_bucket",
        "infinitic_task_queue_seconds_bucket",
        "infinitic_tasks_total",
        "infinitic_consumer_lag",
        "infinitic_restore_seconds_total",
        "infinitic_partitions_restoring",
        "infinitic_cache_hits_total",
        "infinitic_replays_total",
        "infinitic_dead_letters_total",
        "infinitic_tasks_in_flight",
        "infinitic_task_concurrency",
    } <= used


def alert_rules() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())


def rule_problems(rules: dict[str, Any], exported: dict[str, set[str]]) -> list[str]:
    """Prometheus' rule file schema (groups of alerting or recording rules), and the
    expressions checked as the board's."""
    problems = []
    assert set(rules) == {"groups"}
    names = set()
    for group in rules["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules", "labels"}, group.keys()
        assert isinstance(group["name"], str) and group["name"] not in names
        names.add(group["name"])
        for rule in group["rules"]:
            kind = "alert" if "alert" in rule else "record"
            allowed = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if kind == "record":
                allowed = {"record", "expr", "labels"}
            if not set(rule) <= allowed or "expr" not in rule:
                problems.append(f"{rule.get(kind)}: keys {sorted(rule)}")
            if kind == "alert" and not re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]):
                problems.append(f"alert name {rule['alert']!r}")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problems.append(f"{rule.get(kind)}: for {rule['for']!r}")
            for key in ("labels", "annotations"):
                values = rule.get(key, {})
                if not all(isinstance(v, str) for v in values.values()):
                    problems.append(f"{rule.get(kind)}: {key} must be strings")
            problems += [f"{rule.get(kind)}: {p}" for p in check_expression(rule["expr"], exported)]
            # A template's $labels.x must be a label the expression keeps.
            templates = " ".join(rule.get("annotations", {}).values())
            for label in re.findall(r"\$labels\.(\w+)", templates):
                if not re.search(rf"\b{label}\b", rule["expr"]):
                    problems.append(f"{rule.get(kind)}: $labels.{label} not in its expression")
    return problems


def test_the_alert_rules_parse_and_name_only_exported_metrics() -> None:
    rules = alert_rules()
    assert rule_problems(rules, exported_metrics()) == []
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for name in (
        "InfiniticEngineDown",
        "InfiniticLagGrowing",
        "InfiniticDeadLetters",
        "InfiniticWorkflowsFailing",
        "InfiniticRestoreTooLong",
    ):
        assert name in alerts
        assert alerts[name]["labels"]["severity"] in ("critical", "warning", "info")
        assert {"summary", "description"} <= set(alerts[name]["annotations"])
    # The Prometheus Operator's copy holds the same rules.
    assert resource("PrometheusRule", "infinitic")["spec"]["groups"] == rules["groups"]


def test_the_rule_check_catches_mistakes() -> None:
    exported = exported_metrics()
    bad = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"alert": "NotExported", "expr": "infinitic_nope > 0", "for": "5 minutes"},
                    {"alert": "BadKey", "expr": "infinitic_consumer_lag > 0", "severity": "x"},
                    {
                        "alert": "LostLabel",
                        "expr": "sum(infinitic_consumer_lag) > 0",
                        "annotations": {"summary": "{{ $labels.processor }}"},
                    },
                ],
            }
        ]
    }
    assert len(rule_problems(bad, exported)) == 4


def promtool() -> str | None:
    return shutil.which("promtool")


@pytest.mark.skipif(promtool() is None, reason="no promtool here: the rule schema was checked")
def test_promtool_accepts_the_rules_and_the_config_and_the_alerts_fire_as_meant() -> None:
    prometheus = DEPLOY / "prometheus"
    for command in (
        ["check", "rules", str(prometheus / "alerts.yml")],
        ["check", "config", "--syntax-only", str(prometheus / "prometheus.yml")],
        ["test", "rules", str(prometheus / "alerts_test.yml")],  # the alerts fire as meant
    ):
        done = subprocess.run([str(promtool()), *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


# -- docker compose and the image ------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def test_docker_compose_validates_against_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(compose())] == []
    wrong = compose()
    wrong["services"]["engine"]["stop_grace"] = "60s"
    assert list(validator.iter_errors(wrong)), "the schema refuses an unknown key"


def test_docker_compose_runs_what_the_manifests_run(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    same = {
        "topics": "infinitic-topics",
        "engine": "infinitic-engine",
        "worker": "infinitic-worker",
        "dashboard": "infinitic-dashboard",
    }
    for service, workload in same.items():
        spec = services[service]
        args = " ".join(container(workload)["args"]).replace(" --log-format json", "")
        assert spec["command"] == args.split(), f"{service}: JSON logs on Kubernetes only"
        assert spec["image"] == "infinitic-streams:0.1.0"
        assert spec["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file()
        mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}
        assert (DEPLOY / "compose" / "infinitic.toml").samefile(DEPLOY / mounts.pop(CONFIG_PATH))
        env = {k: str(v) for k, v in spec.get("environment", {}).items()}
        _, params = parse_command(spec["command"], env, monkeypatch)
        if service in ("engine", "worker"):
            assert spec["healthcheck"]["test"][-1].count(f":{params['metrics_port']}/readyz")
            assert spec["stop_grace_period"] == "60s"
        if service == "engine":
            assert params["instance_id"] == "engine-0"
            state = load_config(DEPLOY / "compose" / "infinitic.toml").worker.state_dir
            assert mounts == {state: "engine-state"}
        if service == "dashboard":
            assert params["token"], "off loopback the dashboard needs a token"
        if service != "topics":
            assert services[service]["depends_on"]["topics"] == {
                "condition": "service_completed_successfully"
            }
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    bootstrap = load_config(DEPLOY / "compose" / "infinitic.toml").kafka
    assert any(a.endswith(f"//{bootstrap['bootstrap.servers']}") for a in advertised)
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1, "transactions on one broker"


def test_compose_prometheus_and_grafana_are_provisioned_with_the_rules_and_the_board() -> None:
    services = compose()["services"]
    prometheus_config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = {}
    for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), source
            mounts[target] = (DEPLOY / source).resolve()
    config_dir = "/etc/prometheus"
    for rule_file in prometheus_config["rule_files"]:
        assert mounts[f"{config_dir}/{rule_file}"] == (DEPLOY / "prometheus" / "alerts.yml")
    (job,) = prometheus_config["scrape_configs"]
    assert job["honor_labels"] is True and job["metrics_path"] == "/metrics"
    (dns,) = job["dns_sd_configs"]
    assert set(dns["names"]) == {"engine", "worker"}
    for name in dns["names"]:
        assert f"--metrics-port {dns['port']}" in " ".join(services[name]["command"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "infinitic.yml").read_text())[
        "providers"
    ]
    board_path = next(t for t, s in mounts.items() if s.name == "infinitic.json")
    assert str(Path(board_path).parent) == provider["options"]["path"]
    assert mounts[board_path] == (DEPLOY / "grafana" / "infinitic.json")
    env = services["grafana"]["environment"]
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == board_path


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_installs_the_package_and_runs_as_a_user_with_a_state_volume() -> None:
    steps = dockerfile()
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    final = steps[stages[-1] :]
    (base,) = {args.split()[0] for op, args in steps if op == "FROM" and "AS" not in args}
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", base)
    (version,) = [a.split("=")[1] for op, a in steps if op == "ARG" and a.startswith("PYTHON_")]
    assert tuple(map(int, version.split("."))) >= (3, 11)
    user = [args for op, args in final if op == "USER"][-1]
    uid = int(user.split(":")[0])
    assert uid != 0
    for template in workloads().values():
        assert template["spec"]["securityContext"]["runAsUser"] == uid
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (script,) = pyproject["project"]["scripts"]
    assert [args for op, args in final if op == "ENTRYPOINT"] == [json.dumps([script])]
    volumes = [json.loads(args) for op, args in final if op == "VOLUME"]
    assert volumes == [[k8s_config().worker.state_dir]]
    copied = [args.split()[-2] for op, args in steps if op == "COPY" and "--from" not in args]
    for source in copied:
        assert (ROOT / source).exists(), source
    # What hatch builds the wheel from, and the modules the configuration imports.
    assert {"pyproject.toml", "README.md", "avro/", "infinitic_streams/"} <= {
        part for op, args in steps if op == "COPY" for part in args.split()[:-1]
    }
    for reference in k8s_config().worker.workflows + k8s_config().worker.services:
        package = reference.split(".")[0] + "/"
        assert f"{package} /app/{package}" in " ".join(a for op, a in final if op == "COPY")
    assert ("ENV", "PATH=/opt/venv/bin:$PATH") in [(op, a.split()[0]) for op, a in final]
    assert "PYTHONPATH=/app" in " ".join(a for op, a in final if op == "ENV")
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*", "the context is the repository: only what the image needs"
    for source in {"pyproject.toml", "README.md", "avro/", "infinitic_streams/", "examples/"}:
        assert f"!{source}" in ignored


# -- the pods' commands, run here ------------------------------------------------------------


def local_config(directory: Path, bootstrap: str, namespace: str) -> Path:
    """The ConfigMap's infinitic.toml with Kafka, the namespace, the state directory and the
    metrics address made local; nothing else changed."""
    text = (K8S / "infinitic.toml").read_text()
    for key, value in {
        '"bootstrap.servers"': bootstrap,
        "namespace": namespace,
        "state_dir": str(directory / "var-lib-infinitic"),
        "host": "127.0.0.1",
    }.items():
        text, count = re.subn(
            rf'^({re.escape(key)}\s*=\s*)"[^"]*"', rf'\g<1>"{value}"', text, flags=re.M
        )
        assert count == 1, key
    path = directory / "etc-infinitic" / "infinitic.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    original, local = k8s_config(), load_config(path)
    assert (local.namespace, local.metrics.host) == (namespace, "127.0.0.1")
    local.namespace, local.metrics, local.worker.state_dir = (
        original.namespace,
        original.metrics,
        original.worker.state_dir,
    )
    local.kafka["bootstrap.servers"] = original.kafka["bootstrap.servers"]
    assert local == original
    return path


def entry_point() -> list[str]:
    script = Path(sys.executable).with_name("infinitic-streams")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from infinitic_streams.cli.app import main; main()"]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalPod:
    """A manifest's container run as a local process: its args and its environment alone
    (the kubelet's values for fieldRefs), the config path swapped for the local config and
    the metrics port for a free one; /app is the repository (examples/ importable)."""

    def __init__(self, workload: str, pod_name: str, config: Path, log_dir: Path) -> None:
        spec = container(workload)
        port = next((p["containerPort"] for p in spec.get("ports", [])), None)
        self.port = free_port()
        local = {CONFIG_PATH: str(config), "0.0.0.0": "127.0.0.1"}  # this machine only
        args = [local.get(a, a) for a in spec["args"]]
        if port is not None:
            args = [str(self.port) if a == str(port) else a for a in args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFINITIC_")}
        env.update(container_env(spec, pod_name))
        env["PYTHONPATH"] = str(ROOT)
        self.command = [*entry_point(), *args]
        self.log_path = log_dir / f"{pod_name}-{time.time_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """As the readiness probe: /readyz 200 (and /healthz 200 from the start)."""
        deadline = time.monotonic() + timeout
        while (status := self.get("/readyz"))[0] != 200:
            assert self.process.poll() is None, f"{shlex.join(self.command)} ended:\n{self.log()}"
            assert time.monotonic() < deadline, f"not ready: {status}\n{self.log()}"
            if status[0] == 503:
                assert self.get("/healthz")[0] == 200, "alive while not ready"
            time.sleep(0.2)

    def stop(self, grace: float = 60.0) -> int:
        """As the kubelet: SIGTERM, then the grace period; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"still running {grace} s after SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def scrape(*pods: LocalPod) -> tuple[dict[str, str], set[str]]:
    """(type by family name, sample names) of the pods' /metrics together."""
    types: dict[str, str] = {}
    samples: set[str] = set()
    for pod in pods:
        status, text = pod.get("/metrics")
        assert status == 200, text
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            samples |= {s.name for s in family.samples}
    return types, samples


def scrape_when(names: set[str], *pods: LocalPod) -> tuple[dict[str, str], set[str]]:
    """The pods' scrape once it has samples of all `names` (some come with the periodic
    partition report), or after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        types, samples = scrape(*pods)
        if names <= samples or time.monotonic() > deadline:
            return types, samples
        time.sleep(0.5)


def declared(name: str, types: dict[str, str]) -> bool:
    """Whether the scrape declares the family that exposes sample `name`."""
    for suffix, kind in (
        ("_total", "counter"),
        ("_bucket", "histogram"),
        ("_sum", "histogram"),
        ("_count", "histogram"),
    ):
        if name.endswith(suffix) and types.get(name.removesuffix(suffix)) == kind:
            return True
    return types.get(name) == "gauge"


def used_metrics() -> set[str]:
    """The sample names the Grafana board and the alert rules read."""
    expressions = [
        *board_expressions(grafana_board()),
        *(r["expr"] for g in alert_rules()["groups"] for r in g["rules"]),
    ]
    return {s.name for e in expressions for s in selectors(promql(e))}


def test_the_pods_commands_run_workflows_and_serve_every_metric_the_board_and_alerts_use(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    """The Job, the StatefulSet's engine, the Deployment's worker and the dashboard run here
    as the manifests run them, with the ConfigMap's configuration (Kafka, namespace, state
    directory and listening address made local): the Job ends well, the pods get ready, a
    workflow runs, an engine pod restarts on its volume mid-workflow and resumes it, the
    dashboard answers with its token only, every pod stops cleanly on SIGTERM within its
    grace period, and every metric the board and the alerts read is in the pods' /metrics
    (counters reset with a process: the scrapes before and after the restart together)."""
    config = local_config(tmp_path, kafka_bootstrap, namespace)
    used = used_metrics()
    replays = {n for n in used if "replay" in n}  # only a cache miss (the restart) makes them
    pods: list[LocalPod] = []

    def start(workload: str, pod_name: str) -> LocalPod:
        pod = LocalPod(workload, pod_name, config, tmp_path)
        pods.append(pod)
        return pod

    try:
        topics = start("infinitic-topics", "infinitic-topics-x")  # the Job, run to its end
        assert topics.process.wait(120) == 0, topics.log()
        engine = start("infinitic-engine", "infinitic-engine-0")
        worker = start("infinitic-worker", "infinitic-worker-x")
        engine.wait_ready()
        worker.wait_ready()
        with InfiniticClient.from_config(config) as client:
            first = client.dispatch(ImageWorkflow.run, "me@example.com", "https://e.com/a.png")
            assert len(first.result(timeout=60)) == 3
            with pytest.raises(InfiniticError, match="has ended"):  # counted, dead-lettered
                client.get_workflow(None, first.id).signal("approvals", "yes")
            types, samples = scrape_when(used - replays, engine, worker)
            # A pod restart (same name, same volume) while a workflow waits for a task: the
            # engine resumes it by a replay of its history.
            assert worker.stop() == 0, worker.log()
            second = client.dispatch(ImageWorkflow.run, "you@example.com", "https://e.com/b.png")
            deadline = time.monotonic() + 30
            while not second.describe().pending:  # its first task sent, not done
                assert time.monotonic() < deadline, engine.log()
                time.sleep(0.2)
            assert engine.stop() == 0, engine.log()
            engine = start("infinitic-engine", "infinitic-engine-0")
            worker = start("infinitic-worker", "infinitic-worker-y")
            engine.wait_ready()
            worker.wait_ready()
            assert len(second.result(timeout=60)) == 3
            # The dashboard's Deployment: its token from the Secret, every request needs it.
            dashboard = start("infinitic-dashboard", "infinitic-dashboard-x")
            token = container_env(container("infinitic-dashboard"), "")["INFINITIC_DASHBOARD_TOKEN"]
            deadline = time.monotonic() + 60
            while (page := dashboard.get("/", token))[0] != 200:
                assert dashboard.process.poll() is None, dashboard.log()
                assert time.monotonic() < deadline, f"{page}\n{dashboard.log()}"
                time.sleep(0.3)
            assert second.id in page[1] or "ImageWorkflow" in page[1]
            assert dashboard.get("/")[0] in (401, 403)
            assert dashboard.stop() == 0, dashboard.log()
        after_types, after_samples = scrape_when(replays, engine, worker)
        types |= after_types
        samples |= after_samples
        assert used <= set(exported_metrics())
        assert [n for n in used if not declared(n, types)] == [], "declared by the processes"
        assert sorted(used - samples) == [], "with samples"
        for pod in (engine, worker):
            assert pod.stop() == 0, pod.log()
    finally:
        for pod in pods:
            pod.kill()
