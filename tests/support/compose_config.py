"""The exporter's configuration in the compose stack (examples/exporter-in-compose.yml), for
tests that run the stack's exporter natively: its secret paths point into containers, so a test
takes the sections it needs."""
from __future__ import annotations

from typing import Any

import yaml

from tests.support.procs import REPO

COMPOSE_CONFIG = REPO / "examples" / "exporter-in-compose.yml"
SEED_004_RECORDS = REPO / "examples" / "seed-004-records.yml"
RECORD_SECTIONS = ("origin_labels", "metrics")  # the seed-004 mapping


def compose_sections(*names: str) -> dict[str, Any]:
    config = yaml.safe_load(COMPOSE_CONFIG.read_text())
    return {name: config[name] for name in names}


def compose_exporter_config(*names: str) -> str:
    """The compose config's `names` sections (default: all but alert_bridge) as YAML text."""
    config = yaml.safe_load(COMPOSE_CONFIG.read_text())
    return yaml.safe_dump(compose_sections(*(names or [n for n in config if n != "alert_bridge"])))
