"""deploy/scaling/: the remote_write and HA-pair fragments merged into the repo's prometheus.yml
pass `promtool check config`, and the long-term Grafana data source keeps the dashboards' uid."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.fragments import (
    SCALING,
    repo_prometheus_config,
    with_fragment,
    write,
)
from tests.support.procs import REPO, require_binary

pytestmark = pytest.mark.integration  # promtool runs as a process


def promtool_check(config: dict[str, Any], path: Path) -> None:
    done = subprocess.run([require_binary("promtool"), "check", "config", str(write(config, path))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_remote_write_fragment_passes_promtool(tmp_path: Path) -> None:
    config = with_fragment(repo_prometheus_config(), "prometheus-remote-write.yml")
    promtool_check(config, tmp_path / "prometheus.yml")
    (remote,) = config["remote_write"]
    assert remote["url"].startswith("http://thanos-receive:")
    assert config["scrape_configs"] == repo_prometheus_config()["scrape_configs"]  # added only


@pytest.mark.parametrize("replica", ["a", "b"])
def test_each_replica_of_the_ha_pair_passes_promtool(tmp_path: Path, replica: str) -> None:
    config = with_fragment(with_fragment(repo_prometheus_config(), "prometheus-remote-write.yml"),
                           "prometheus-ha.yml", PROMETHEUS_REPLICA=replica)
    promtool_check(config, tmp_path / "prometheus.yml")
    assert config["global"]["external_labels"]["replica"] == replica
    assert config["global"]["scrape_interval"] == "15s"  # the repo's global settings stay
    # Alerts leave without the replica label (so the two copies are one alert in Alertmanager)
    # for both Alertmanagers of the cluster.
    assert {"action": "labeldrop", "regex": "replica"} in config["alerting"][
        "alert_relabel_configs"]
    (managers,) = config["alerting"]["alertmanagers"]
    assert len(managers["static_configs"][0]["targets"]) == 2


def test_the_ha_fragment_names_the_label_the_store_deduplicates_by() -> None:
    text = (SCALING / "prometheus-ha.yml").read_text()
    assert "replica: ${PROMETHEUS_REPLICA}" in text
    assert "--query.replica-label=replica" in text
    assert "--query.replica-label=replica" in (SCALING / "grafana-datasource-long-term.yml").read_text()


def test_the_long_term_data_source_keeps_the_dashboards_uid() -> None:
    (source,) = yaml.safe_load(
        (SCALING / "grafana-datasource-long-term.yml").read_text())["datasources"]
    shipped = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    (prometheus,) = [s for s in shipped["datasources"] if s["type"] == "prometheus"]
    assert (source["type"], source["uid"], source["name"]) == (
        "prometheus", prometheus["uid"], prometheus["name"])
    assert source["url"].startswith("http://thanos-query:")
    for path in (REPO / "grafana" / "dashboards").rglob("*.json"):
        variables = json.loads(path.read_text())["templating"]["list"]
        (picker,) = [v for v in variables if v["type"] == "datasource"]
        assert picker["current"]["value"] == source["uid"], path.name
