"""docker-compose.yml checked offline: the compose schema (Debian's docker-compose validates
against the compose-spec schema it ships) on a fresh copy of the repo with no .env and no
secrets, and the things a schema cannot see: pinned images, host paths that exist, Prometheus
targets and Alertmanager webhooks that name compose services and ports, mounts that hold the
files the configs refer to, secrets that the init-secrets service makes for the users that read
them, healthchecks with tools the images have, loopback-only ports. With a reachable Docker
engine the stack is also brought up.
"""
from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import requests
import yaml

from tests.support.compose_config import (
    RECORD_SECTIONS,
    SEED_004_RECORDS,
    compose_sections,
)
from tests.support.procs import REPO, free_port, wait_until

COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"init-secrets", "redis", "exporter", "prometheus", "alertmanager", "grafana", "demo"}
ONE_SHOT = {"init-secrets", "demo"}  # no HTTP to check: the image's /healthz check is disabled
OWN_IMAGE = "agent-exporter"
# What each image's healthcheck may call: tools those images really ship.
HEALTHCHECK_TOOLS = {"redis": "redis-cli", "prom/prometheus": "wget", "prom/alertmanager": "wget",
                     "grafana/grafana": "curl", OWN_IMAGE: "python"}
# The users the images run as, who must be able to read their secrets.
IMAGE_UIDS = {"prom/alertmanager": 65534, "grafana/grafana": 472}
SECRETS_VOLUME = "secrets"
GENERATED = {"bridge_token", "grafana_admin_password"}  # what scripts/init-secrets makes
# What a fresh clone lacks: the user's files, git-ignored.
UNTRACKED = shutil.ignore_patterns(".git", ".venv", ".env", ".state", "__pycache__", "*.egg-info",
                                   ".*_cache", ".hypothesis", "bench")
VARIABLE = re.compile(r"\$\{(\w+)(:?[-?])?([^}]*)\}")


def resolve(text: str) -> str:
    """Compose interpolation with an empty environment: ${VAR:-default} → default."""
    return VARIABLE.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of a service's short-syntax volumes."""
    out = []
    for volume in service.get("volumes", []):
        source, target = resolve(volume).split(":")[:2]
        out.append((source, target))
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repo path a bind mount puts at `container_path`; fails when no bind mount covers it."""
    wanted = PurePosixPath(container_path)
    for source, target in sorted(mounts(service), key=lambda m: -len(m[1])):
        if source.startswith((".", "/")) and wanted.is_relative_to(target):
            return (REPO / source / wanted.relative_to(target)).resolve()
    raise AssertionError(f"{container_path} is not inside any bind mount of the service")


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(resolve(str(port)).split(":")[-1].split("/")[0])
            for port in service.get("ports", [])}


def image_family(service: dict[str, Any]) -> str:
    image = service["image"]
    return OWN_IMAGE if image.startswith(OWN_IMAGE) else image.rsplit(":", 1)[0]


def flag(service: dict[str, Any], name: str) -> str:
    """The value of a `--name=value` item of the service's command."""
    values = [item.split("=", 1)[1] for item in service["command"] if item.startswith(f"--{name}=")]
    assert len(values) == 1, (name, service["command"])
    return resolve(values[0])


def compose_cli() -> list[str] | None:
    """`docker compose` (plugin) or `docker-compose` (Debian package), whichever works."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) and subprocess.run(
                [*command, "version"], capture_output=True, timeout=30).returncode == 0:
            return command
    return None


def fresh_copy(destination: Path) -> Path:
    """The repo as a fresh clone has it: no .env, no secrets but the *.example files."""
    shutil.copytree(REPO, destination, ignore=UNTRACKED)
    for secret in (destination / "alertmanager" / "secrets").iterdir():
        if secret.suffix != ".example":
            secret.unlink()
    return destination


@pytest.mark.integration
def test_a_fresh_clone_passes_compose_config(tmp_path: Path) -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed "
                    "(Debian: apt-get install docker-compose)")
    clone = fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GRAFANA_", "COMPOSE_")) and not k.endswith("_PORT")}
    for profile in ([], ["--profile", "demo"]):
        done = subprocess.run([*cli, *profile, "config"], cwd=clone, env=env, check=False,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rendered = yaml.safe_load(done.stdout)
        assert "GF_SECURITY_ADMIN_PASSWORD" not in rendered["services"]["grafana"]["environment"]
        assert rendered["services"]["init-secrets"]["environment"]["GRAFANA_ADMIN_PASSWORD"] in (
            "", None)


def test_the_services_and_their_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            assert image.startswith(OWN_IMAGE + ":"), name
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image else "latest"
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z0-9.]+)?", tag), f"{name}: {image} is not pinned"
    base = re.search(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?", base), base
    assert image_family(services["prometheus"]) == "prom/prometheus"
    assert services["prometheus"]["image"].split(":v")[1].startswith("3.")


def test_bind_mounts_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, _ in mounts(service):
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist in the repo"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"


def test_published_ports_are_loopback_by_default(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            address, host, container = resolve(port).split(":")
            assert address == "127.0.0.1", f"{name}: {port}"
            assert host.isdigit() and container.isdigit(), f"{name}: {port} needs a default port"


def test_healthchecks_use_tools_the_images_have(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service["healthcheck"]
        if name in ONE_SHOT:
            assert check == {"disable": True}, name
            continue
        assert check["test"][0] == "CMD", name
        assert check["test"][1] == HEALTHCHECK_TOOLS[image_family(service)], name
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^HEALTHCHECK .*\n?.*python.*/healthz", dockerfile, re.M)
    assert re.search(r"^USER\s+(?!root\b|0\b)\S+", dockerfile, re.M)
    assert re.search(r"^EXPOSE\s+9842\b", dockerfile, re.M)


def test_startup_order_waits_for_health_and_secrets(services: dict[str, dict[str, Any]]) -> None:
    expected = {"exporter": {"init-secrets", "redis"}, "alertmanager": {"init-secrets", "exporter"},
                "prometheus": {"exporter", "alertmanager"}, "grafana": {"init-secrets", "prometheus"},
                "demo": {"redis", "exporter"}}
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needs, name
        for other, how in depends.items():
            if other == "init-secrets":
                assert how == {"condition": "service_completed_successfully"}, name
                continue
            assert how == {"condition": "service_healthy"}, (name, other)
            assert "test" in services[other]["healthcheck"], other
    readers = {name for name, service in services.items()
               if any(source == SECRETS_VOLUME for source, _ in mounts(service))}
    assert readers == {"init-secrets", "exporter", "alertmanager", "grafana"}
    assert {name for name in readers if "init-secrets" in services[name].get("depends_on", {})} \
        == readers - {"init-secrets"}


def secrets_mount(service: dict[str, Any]) -> tuple[str, str]:
    """(container path, mode) of the service's mount of the secrets volume."""
    found = [resolve(v).split(":") for v in service["volumes"]
             if resolve(v).split(":")[0] == SECRETS_VOLUME]
    assert len(found) == 1, service["volumes"]
    return found[0][1], (found[0][2] if len(found[0]) > 2 else "rw")


def secret_name(service: dict[str, Any], container_path: str) -> str:
    """The file of the secrets volume at `container_path`; fails when it is not in that volume."""
    target, _ = secrets_mount(service)
    path = PurePosixPath(container_path)
    assert path.parent == PurePosixPath(target), f"{container_path} is not in the secrets volume"
    return path.name


def test_init_secrets_fills_the_volume_the_others_read(services: dict[str, dict[str, Any]]) -> None:
    init = services["init-secrets"]
    assert image_family(init) == OWN_IMAGE and init["restart"] == "no"
    assert init["user"] == "0:0"  # to give each file to its reader; nothing else runs as root
    assert init["read_only"] is True and init["cap_drop"] == ["ALL"]
    assert set(init["cap_add"]) <= {"CHOWN", "DAC_OVERRIDE"}
    script, target = init["command"][-2:]
    assert host_path(init, script) == REPO / "scripts" / "init-secrets"
    assert target == secrets_mount(init)[0] and secrets_mount(init)[1] == "rw"
    provided = host_path(init, init["environment"]["PROVIDED_DIR"])
    assert provided == REPO / "alertmanager" / "secrets"
    for name in ("exporter", "alertmanager", "grafana"):
        assert secrets_mount(services[name])[1] == "ro", name

    # Each generated secret belongs to the users of the services that read it.
    owners = dict(pair.split("=") for pair in init["environment"]["SECRET_OWNERS"].split())
    user = re.search(r"^USER\s+(\d+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert user, "the Dockerfile names its user by uid"
    exporter_uid = int(user.group(1))
    assert owners["bridge_token"] == f"{exporter_uid}:{IMAGE_UIDS['prom/alertmanager']}"
    assert owners["grafana_admin_password"].split(":")[0] == str(IMAGE_UIDS["grafana/grafana"])
    assert owners["*"].split(":")[0] == str(IMAGE_UIDS["prom/alertmanager"])  # Slack, SMTP, ...


def test_prometheus_targets_are_compose_services(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for s in job["static_configs"]
               for t in s["targets"]]
    targets += [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"]
                for t in s["targets"]]
    for target in targets:
        host, port = target.rsplit(":", 1)
        service = services["prometheus"] if host == "localhost" else services.get(host)
        assert service is not None and int(port) in container_ports(service), target
    assert {t.split(":")[0] for t in targets} >= {"exporter", "alertmanager"}


def test_prometheus_loads_the_repo_rules(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    config_path = PurePosixPath(flag(prometheus, "config.file"))
    assert host_path(prometheus, str(config_path)) == (REPO / "prometheus" / "prometheus.yml")
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    loaded = {Path(p) for pattern in config["rule_files"]
              for p in glob.glob(str(host_path(prometheus, str(config_path.parent / pattern))))}
    assert loaded == set((REPO / "prometheus" / "rules").glob("*.yml")) != set()
    assert flag(prometheus, "storage.tsdb.retention.time") == "90d"  # the seed's retention
    assert "--web.enable-lifecycle" in prometheus["command"]
    assert any(target == flag(prometheus, "storage.tsdb.path") for _, target in mounts(prometheus))


def test_alertmanager_config_files_and_webhook_resolve(services: dict[str, dict[str, Any]]) -> None:
    alertmanager = services["alertmanager"]
    config_path = PurePosixPath(flag(alertmanager, "config.file"))
    assert host_path(alertmanager, str(config_path)) == REPO / "alertmanager" / "alertmanager.yml"
    text = (REPO / "alertmanager" / "alertmanager.yml").read_text()
    config = yaml.safe_load(text)
    for pattern in config.get("templates", []):
        assert glob.glob(str(host_path(alertmanager, str(config_path.parent / pattern)))), pattern
    for secret in re.findall(r"_file:\s*\"?(/[^\s\"]+)", text):
        name = secret_name(alertmanager, secret)  # the user's file, or one made on first start
        assert name in GENERATED or (REPO / "alertmanager" / "secrets" / f"{name}.example").is_file()
    hooks = [hook["url"] for receiver in config["receivers"]
             for hook in receiver.get("webhook_configs", [])]
    bridge = [url for url in hooks if url.endswith("/alertmanager")]
    assert bridge, hooks
    for url in bridge:
        host, port = re.match(r"http://([\w-]+):(\d+)/", url).groups()
        assert host == "exporter" and int(port) in container_ports(services["exporter"]), url
    # The exporter's mounted config names the same token file that Alertmanager sends.
    exporter = services["exporter"]
    command = exporter["command"]
    config_in_container = command[command.index("--config") + 1]
    config_on_host = next(s for s, t in mounts(exporter) if t == config_in_container)
    exporter_config = yaml.safe_load((REPO / config_on_host).read_text())
    token = exporter_config["alert_bridge"]["token_file"]
    assert secret_name(exporter, token) == "bridge_token"
    sent = config["receivers"][[r["name"] for r in config["receivers"]].index("redis-bridge")]
    credentials = sent["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"]
    assert secret_name(alertmanager, credentials) == "bridge_token"


def test_grafana_provisioning_matches_the_mounts(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # the image refuses it beside the __FILE one
    assert secret_name(grafana, env["GF_SECURITY_ADMIN_PASSWORD__FILE"]) == "grafana_admin_password"
    assert ("./grafana/provisioning", "/etc/grafana/provisioning") in mounts(grafana)
    assert ("./grafana/dashboards", "/var/lib/grafana/dashboards") in mounts(grafana)
    home = host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.is_file(), f"home dashboard {home} is missing"

    providers = [p for f in sorted((REPO / "grafana/provisioning/dashboards").glob("*.y*ml"))
                 for p in yaml.safe_load(f.read_text()).get("providers", [])]
    assert providers, "no dashboard provider in grafana/provisioning/dashboards"
    for provider in providers:
        folder = host_path(grafana, provider["options"]["path"])
        assert list(folder.glob("*.json")), f"{provider['name']}: no dashboards in {folder}"
    sources = [s for f in sorted((REPO / "grafana/provisioning/datasources").glob("*.y*ml"))
               for s in yaml.safe_load(f.read_text()).get("datasources", [])]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert prometheus, "no Prometheus data source provisioned"
    for source in prometheus:
        host, port = re.match(r"https?://([\w-]+):(\d+)", source["url"]).groups()
        assert host in services and int(port) in container_ports(services[host]), source["url"]


def test_demo_profile_and_env_example(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    assert demo["profiles"] == ["demo"]
    assert demo["command"] == ["agent-exporter", "demo", "--incidents"]
    assert demo["image"] == compose["services"]["exporter"]["image"]
    assert compose["services"]["redis"]["command"][-2:] == ["--appendonly", "yes"]

    used = {match[0] for match in VARIABLE.findall(COMPOSE_FILE.read_text())}
    documented = set(re.findall(r"^(\w+)=", (REPO / ".env.example").read_text(), re.M))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    assert documented - used <= {"COMPOSE_PROJECT_NAME"}, sorted(documented - used)


def test_exporter_maps_seed_004_records_as_the_example_does() -> None:
    """The stack (and the demo in it) sends seed 004's records; its exporter config carries the
    mapping of examples/seed-004-records.yml, which explains it, unchanged."""
    example = yaml.safe_load(SEED_004_RECORDS.read_text())
    assert compose_sections(*RECORD_SECTIONS) == {name: example[name] for name in RECORD_SECTIONS}


def test_image_context_holds_the_package_only() -> None:
    ignore = (REPO / ".dockerignore").read_text().split("\n")
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: secrets, .venv, .state and .env stay out
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert {"pyproject.toml", "exporter"} <= allowed
    assert not allowed & {".env", ".state", ".venv", "alertmanager"}


@pytest.mark.integration
def test_compose_stack_comes_up_with_dashboards(tmp_path: Path) -> None:
    """Needs a Docker engine: on a fresh copy of the repo (no .env, no secrets), builds the
    image, waits for every service to be healthy, reads the generated Grafana password from the
    init-secrets log and asks Grafana (anonymous access refused) for the provisioned dashboards."""
    try:
        import docker

        engine = docker.from_env()
        engine.ping()
    except Exception as exc:  # no socket, no daemon, no permission: all mean "cannot run here"
        pytest.skip(f"no Docker engine reachable: {exc.__class__.__name__}: {exc}")
    cli = compose_cli()
    if cli is None:
        pytest.skip("a Docker engine but no compose CLI (docker compose / docker-compose)")

    clone = fresh_copy(tmp_path / "clone")
    project = f"agentexporter{secrets.token_hex(3)}"
    ports = {name: str(free_port()) for name in ("REDIS_PORT", "EXPORTER_PORT", "PROMETHEUS_PORT",
                                                 "ALERTMANAGER_PORT", "GRAFANA_PORT")}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}, **ports,
           "COMPOSE_PROJECT_NAME": project}
    command = [*cli, "--profile", "demo"]
    try:
        subprocess.run([*command, "up", "-d", "--build"], cwd=clone, env=env, check=True,
                       timeout=900)

        def states() -> dict[str, str] | None:
            containers = engine.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={project}"})
            found = {c.labels["com.docker.compose.service"]:
                     (c.attrs["State"].get("Health") or {}).get("Status", c.status)
                     for c in containers}
            healthy = all(found.get(s) == "healthy" for s in SERVICES - ONE_SHOT)
            done = found.get("init-secrets") == "exited"
            return found if healthy and done and found.get("demo") == "running" else None

        wait_until(states, timeout=300, interval=2, message="every compose service healthy")
        log = subprocess.run([*command, "logs", "--no-color", "init-secrets"], cwd=clone, env=env,
                             check=True, capture_output=True, text=True, timeout=60).stdout
        printed = re.search(r"has the password (\S+) \(shown this once\)", log)
        assert printed, log
        password = printed.group(1)
        grafana = f"http://127.0.0.1:{ports['GRAFANA_PORT']}"
        assert requests.get(grafana + "/api/search", timeout=5).status_code == 401
        wanted = {json.loads(f.read_text())["title"]
                  for f in (REPO / "grafana" / "dashboards").glob("*.json")}
        assert wanted

        def listed() -> bool:
            found = requests.get(grafana + "/api/search", params={"type": "dash-db"},
                                 auth=("admin", password), timeout=5).json()
            return wanted <= {dashboard["title"] for dashboard in found}

        wait_until(listed, timeout=60, message="Grafana to list the provisioned dashboards")
    finally:
        subprocess.run([*command, "down", "-v", "--remove-orphans"], cwd=clone, env=env,
                       check=False, timeout=300)
