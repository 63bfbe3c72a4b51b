"""A real Prometheus for the tests: the repo's rules, scraping given targets every second as the
repo's exporter job, on a free loopback port, stopped by PID."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.procs import REPO, Proc, free_port, require_binary

SCRAPE_SECONDS = 1


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        repo_config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
        job = repo_config["scrape_configs"][0]["job_name"]
        config = {
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": "1s",
                       "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "rule_files": [str(REPO / "prometheus" / "rules" / "*.yml")],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = Proc([require_binary("prometheus"), f"--config.file={path}",
                          f"--storage.tsdb.path={workdir / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{port}"], workdir / "prometheus.log")

    def api(self, endpoint: str, **params: Any) -> dict[str, Any]:
        if not self.proc.alive():
            raise AssertionError(f"prometheus exited:\n{self.proc.log()}")
        return requests.get(f"{self.url}/api/v1/{endpoint}", params=params, timeout=10).json()

    def query(self, expr: str) -> dict[frozenset, float]:
        """An instant query's vector: {frozenset of its labels: value}."""
        response = self.api("query", query=expr)
        assert response["status"] == "success", response
        return {frozenset(r["metric"].items()): float(r["value"][1])
                for r in response["data"]["result"]}

    def stop(self) -> None:
        self.proc.stop()
