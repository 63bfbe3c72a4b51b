"""deploy/kubernetes rendered offline with `kubectl kustomize`: the core kinds against the
Kubernetes schemas (kubernetes-validate, strict), the Prometheus Operator's kinds by structure
(required fields, selectors that match the Service, ports by name, rules that pass promtool),
and scripts/kubernetes, which writes generated/ from the compose stack's files.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

import exporter
from exporter.config import load
from tests.support.procs import REPO, require_binary

pytestmark = pytest.mark.integration  # kubectl, promtool and the generator run as processes

BASE = REPO / "deploy" / "kubernetes"
OVERLAY = REPO / "examples" / "kubernetes-overlay"
OPERATOR_GROUP = "monitoring.coreos.com"
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
RULES_RUNBOOK_BASE = "http://127.0.0.1:9842/runbooks"
GENERATOR_INPUTS = ("scripts/kubernetes", "prometheus/rules", "grafana/dashboards",
                    "alertmanager/alertmanager.yml", "deploy/kubernetes")


class KubeLoader(yaml.SafeLoader):
    """YAML as kubectl writes it: a bare `=` (a matchType) is a string, as in YAML 1.2."""


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(node.value)


KubeLoader.add_constructor("tag:yaml.org,2002:value", _plain)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run([require_binary("kubectl"), "kustomize", str(directory)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.load_all(done.stdout, Loader=KubeLoader) if doc]


class Rendered:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind)
                 if name is None or doc["metadata"]["name"] == name]
        assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
        return found[0]

    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]

    def container(self) -> dict[str, Any]:
        (container,) = self.pod()["spec"]["containers"]
        return container


@pytest.fixture(scope="module")
def base() -> Rendered:
    return Rendered(kustomize(BASE))


def source_rules() -> dict[str, list[dict[str, Any]]]:
    return {path.name: yaml.safe_load(path.read_text())["groups"]
            for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))}


def alert_names() -> set[str]:
    return {rule["alert"] for groups in source_rules().values() for group in groups
            for rule in group["rules"] if "alert" in rule}


def test_core_kinds_pass_the_kubernetes_schemas(base: Rendered) -> None:
    core = [doc for doc in base.docs if not doc["apiVersion"].startswith(OPERATOR_GROUP)]
    assert {doc["kind"] for doc in core} == {"Deployment", "Service", "ConfigMap"}
    for doc in core:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_everything_lands_in_one_namespace_with_the_release_label(base: Rendered) -> None:
    for doc in base.docs:
        metadata = doc["metadata"]
        assert metadata["namespace"] == "monitoring", metadata["name"]
        assert metadata["labels"]["release"] == "kube-prometheus-stack", metadata["name"]
        assert metadata["name"].startswith("agent-exporter"), metadata["name"]


def test_the_exporter_pod_runs_locked_down_with_probes(base: Rendered) -> None:
    pod, container = base.pod()["spec"], base.container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    user = re.search(r"^USER\s+(\d+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert user and pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"/tmp"} <= {mount["mountPath"] for mount in container["volumeMounts"]}

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http-metrics": 9842}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http-metrics"}, probe
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    assert container["image"] == f"agent-exporter:{exporter.__version__}"

    # Redis Streams consumers must be unique: each pod reads as its own name.
    env = {item["name"]: item for item in container["env"]}
    assert env["AGENT_EXPORTER_CONSUMER"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}}


def mounted_file(base: Rendered, container_path: str) -> tuple[dict[str, Any], str]:
    """(the pod volume, the key in it) that puts a file at `container_path`."""
    path = PurePosixPath(container_path)
    (mount,) = [m for m in base.container()["volumeMounts"]
                if path.is_relative_to(m["mountPath"])]
    (volume,) = [v for v in base.pod()["spec"]["volumes"] if v["name"] == mount["name"]]
    relative = str(path.relative_to(mount["mountPath"]))
    source = volume.get("secret") or volume.get("configMap") or {}
    for item in source.get("items", []):
        if item["path"] == relative:
            return volume, item["key"]
    return volume, relative


def test_the_config_map_is_a_valid_exporter_config(base: Rendered, tmp_path: Path) -> None:
    args = base.container()["args"]
    config_path = args[args.index("--config") + 1]
    volume, key = mounted_file(base, config_path)
    config_map = base.one("ConfigMap", volume["configMap"]["name"])  # kustomize's hashed name
    text = config_map["data"][key]
    token_file = yaml.safe_load(text)["alert_bridge"]["token_file"]
    secret_volume, secret_key = mounted_file(base, token_file)
    assert secret_volume["secret"]["secretName"] == "agent-exporter-alert-bridge"
    assert secret_key == "token"

    (tmp_path / "token").write_text("t0ken\n")
    local = tmp_path / "agent-exporter.yml"
    local.write_text(text.replace(token_file, str(tmp_path / "token")))
    config = load(str(local), env={})  # the real loader: unknown keys or bad values raise
    assert config.alert_bridge.token_file == str(tmp_path / "token")


def test_service_and_service_monitor_select_the_exporter(base: Rendered) -> None:
    service = base.one("Service", "agent-exporter")
    pod_labels = base.pod()["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {port["name"] for port in base.container()["ports"]}
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert all(port["targetPort"] in container_ports for port in service_ports.values())

    monitor = base.one("ServiceMonitor")
    assert monitor["apiVersion"] == f"{OPERATOR_GROUP}/v1"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["endpoints"] and all(endpoint["port"] in service_ports
                                     for endpoint in spec["endpoints"])
    assert spec["endpoints"][0]["path"] == "/metrics"
    # The job label Prometheus gives the targets is the one the rules select.
    job = service["metadata"]["labels"][spec["jobLabel"]]
    rules_text = "".join(p.read_text() for p in (REPO / "prometheus" / "rules").glob("*.yml"))
    assert f'job="{job}"' in rules_text


def test_prometheus_rules_match_their_source_and_pass_promtool(base: Rendered,
                                                                tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rendered = base.of_kind("PrometheusRule")
    assert all(doc["apiVersion"] == f"{OPERATOR_GROUP}/v1" for doc in rendered)
    runbook_base = yaml.safe_load((BASE / "generator.yml").read_text())["runbook_base"]
    files = []
    for doc in rendered:
        assert doc["spec"]["groups"], doc["metadata"]["name"]
        path = tmp_path / f"{doc['metadata']['name']}.yml"
        path.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
        files.append(str(path))
    done = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    def comparable(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The groups with runbook links moved to the deployment's base."""
        text = json.dumps(groups).replace(f'"{RULES_RUNBOOK_BASE}/', f'"{runbook_base}/')
        return json.loads(text)

    expected = sorted((g for groups in source_rules().values() for g in comparable(groups)),
                      key=lambda g: g["name"])
    got = sorted((g for doc in rendered for g in doc["spec"]["groups"]), key=lambda g: g["name"])
    assert got == expected


def test_alertmanager_config_sends_the_bundles_alerts_to_the_bridge(base: Rendered) -> None:
    config = base.one("AlertmanagerConfig", "agent-exporter")
    assert config["apiVersion"] == f"{OPERATOR_GROUP}/v1alpha1"
    spec = config["spec"]
    receivers = {receiver["name"]: receiver for receiver in spec["receivers"]}
    (hook,) = receivers[spec["route"]["receiver"]]["webhookConfigs"]

    service = base.one("Service", "agent-exporter")
    ports = {port["port"] for port in service["spec"]["ports"]}
    url = re.fullmatch(r"http://([\w-]+)\.([\w-]+)\.svc:(\d+)/alertmanager", hook["url"])
    assert url, hook["url"]
    assert (url.group(1), url.group(2)) == (service["metadata"]["name"],
                                            service["metadata"]["namespace"])
    assert int(url.group(3)) in ports

    # The bearer token is the Secret the exporter reads as its token file.
    credentials = hook["httpConfig"]["authorization"]["credentials"]
    secrets = [v["secret"] for v in base.pod()["spec"]["volumes"] if "secret" in v]
    assert {(s["secretName"], item["key"]) for s in secrets for item in s["items"]} == {
        (credentials["name"], credentials["key"])}

    # Every alert of the rules reaches the bridge, but the heartbeat, as in alertmanager.yml.
    (names,) = [m for m in spec["route"]["matchers"] if m["name"] == "alertname"]
    assert names["matchType"] == "=~"
    routed = {name for name in alert_names() if re.fullmatch(names["value"], name)}
    assert routed == alert_names() - {"Watchdog"}
    shipped = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())["route"]
    assert spec["route"]["groupBy"] == shipped["group_by"]
    assert (spec["route"]["groupWait"], spec["route"]["groupInterval"]) == (
        shipped["group_wait"], shipped["group_interval"])
    for rule in spec["inhibitRules"]:
        assert rule["sourceMatch"] and rule["targetMatch"] and rule["equal"]
        for matcher in rule["sourceMatch"] + rule["targetMatch"]:
            assert set(matcher) == {"name", "matchType", "value"}
            assert matcher["matchType"] in ("=", "!=", "=~", "!~")


def test_dashboards_become_config_maps_for_the_grafana_sidecar(base: Rendered) -> None:
    root = REPO / "grafana" / "dashboards"
    maps = [doc for doc in base.of_kind("ConfigMap")
            if doc["metadata"]["labels"].get("grafana_dashboard") == "1"]
    by_text = {text: doc for doc in maps for text in doc["data"].values()}
    files = sorted(root.rglob("*.json"))
    assert len(maps) == len(files) > 0
    for path in files:
        doc = by_text[path.read_text()]  # the file's own text, unchanged
        folder = "/".join(path.relative_to(root).parts[:-1])
        assert doc["metadata"].get("annotations", {}).get("grafana_folder", "") == folder, path
        json.loads(path.read_text())


def test_an_overlay_moves_the_bundle_and_the_bridge_url_to_its_namespace() -> None:
    overlay = Rendered(kustomize(OVERLAY))
    assert {doc["metadata"]["namespace"] for doc in overlay.docs} == {"agents"}
    (hook,) = overlay.one("AlertmanagerConfig")["spec"]["receivers"][0]["webhookConfigs"]
    assert hook["url"] == "http://agent-exporter.agents.svc:9842/alertmanager"
    assert overlay.container()["image"].startswith("registry.example.com/agent-exporter:")
    config = overlay.one("ConfigMap", overlay.pod()["spec"]["volumes"][0]["configMap"]["name"])
    assert "redis-master.agents.svc" in config["data"]["agent-exporter.yml"]
    assert {doc["metadata"]["labels"]["release"] for doc in overlay.docs} == {"prometheus"}


def generator(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "scripts" / "kubernetes"), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_committed_files_are_what_the_generator_writes() -> None:
    done = generator(REPO, "--check")
    assert done.returncode == 0, done.stderr


@pytest.fixture()
def checkout(tmp_path: Path) -> Iterator[Path]:
    """The generator and its inputs, copied: runs that write do not touch the repo."""
    for relative in GENERATOR_INPUTS:
        source, target = REPO / relative, tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    yield tmp_path


def test_the_generator_check_names_what_changed_and_a_rerun_fixes_it(checkout: Path) -> None:
    dashboard = checkout / "grafana" / "dashboards" / "swarm" / "agents.json"
    dashboard.write_text(dashboard.read_text() + "\n")
    (checkout / "grafana" / "dashboards" / "swarm" / "extra.json").write_text('{"title": "x"}\n')
    done = generator(checkout, "--check")
    assert done.returncode == 1
    assert "generated/dashboard-swarm-agents.yaml" in done.stderr
    assert "generated/dashboard-swarm-extra.yaml" in done.stderr

    assert generator(checkout).returncode == 0
    written = {p.name: p.read_bytes() for p in (checkout / "deploy/kubernetes/generated").iterdir()}
    assert "dashboard-swarm-extra.yaml" in written
    assert generator(checkout, "--check").returncode == 0
    (checkout / "grafana" / "dashboards" / "swarm" / "extra.json").unlink()
    assert "2 changed" in generator(checkout).stdout  # its file and the list of files
    assert not (checkout / "deploy/kubernetes/generated/dashboard-swarm-extra.yaml").exists()
    again = {p.name: p.read_bytes() for p in (checkout / "deploy/kubernetes/generated").iterdir()}
    assert again.keys() == written.keys() - {"dashboard-swarm-extra.yaml"}
    assert all(again[name] == written[name] for name in again if name != "kustomization.yaml")


def test_the_runbook_base_is_set_once_per_deployment(checkout: Path) -> None:
    rules = checkout / "prometheus" / "rules" / "training.alerts.yml"
    text = rules.read_text()
    alert = "TrainingLossHigh"
    text = re.sub(r"(- alert: TrainingLossHigh\n(?:.*\n)*?\s+runbook_url: ).*",
                  rf"\g<1>{RULES_RUNBOOK_BASE}/{alert}", text, count=1)
    rules.write_text(text)

    def runbook() -> str:
        doc = yaml.safe_load((checkout / "deploy/kubernetes/generated"
                              / "prometheusrule-training-alerts.yaml").read_text())
        return next(rule["annotations"]["runbook_url"] for group in doc["spec"]["groups"]
                    for rule in group["rules"] if rule.get("alert") == alert)

    assert generator(checkout, "--runbook-base", "https://runbooks.example.com/ae/").returncode == 0
    assert runbook() == f"https://runbooks.example.com/ae/{alert}"
    assert "runbook_base: https://runbooks.example.com/ae\n" in (
        checkout / "deploy/kubernetes/generator.yml").read_text()
    assert generator(checkout, "--check").returncode == 0  # the base stays set
    assert generator(checkout).returncode == 0
    assert runbook() == f"https://runbooks.example.com/ae/{alert}"
