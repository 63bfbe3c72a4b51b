"""Config fragments from deploy/scaling/ applied the way their comments tell users to."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.support.procs import REPO

SCALING = REPO / "deploy" / "scaling"


def with_fragment(config: dict[str, Any], name: str, **env: str) -> dict[str, Any]:
    """`config` plus the fragment deploy/scaling/`name`: `global` keys join, other top-level keys
    replace; ${VAR} references are expanded from `env` as Prometheus 3 expands external labels."""
    text = (SCALING / name).read_text()
    for var, value in env.items():
        text = text.replace(f"${{{var}}}", value)
    fragment = yaml.safe_load(text)
    merged = copy.deepcopy(config)
    merged.setdefault("global", {}).update(fragment.pop("global", {}))
    merged.update(fragment)
    return merged


def repo_prometheus_config() -> dict[str, Any]:
    """prometheus/prometheus.yml with its rule files by absolute path, to be written anywhere."""
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(REPO / "prometheus" / p) for p in config["rule_files"]]
    return config


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
