"""docs/metrics.md + docs/collectors.md list exactly what the exporter can expose."""
from __future__ import annotations

import yaml

from exporter.app import Exporter
from exporter.config import load
from exporter.domains.mappings import parse_mappings
from tests.support.compose_config import SEED_004_RECORDS
from tests.support.metric_list import documented

STANDARD = ("process_", "python_")  # prometheus-client's own, documented upstream


def exposable() -> dict[str, str]:
    """Family name → type for everything an exporter with every source and collector exposes."""
    exporter = Exporter(load(None, env={}, flags={"source": "both"}))
    families = {name: family.kind for name, family in exporter.store.families.items()}
    for metric in list(exporter.registry.collect()) + list(exporter.collector_set.describe()):
        if metric.name.startswith(STANDARD):
            continue
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        families[name] = metric.type
    return families


def test_every_exposed_metric_is_documented_with_its_type():
    docs = documented()
    for name, kind in exposable().items():
        assert name in docs, f"{name} is exposed but not in docs/metrics.md or docs/collectors.md"
        assert docs[name] == kind, f"{name} is a {kind}, documented as {docs[name]}"


def mapped_records() -> dict[str, str]:
    """Family name → type of what examples/seed-004-records.yml makes of seed 004's records."""
    config = yaml.safe_load(SEED_004_RECORDS.read_text())
    return {(m.name or m.match) + ("_total" if m.type == "counter" else ""): m.type
            for m in parse_mappings(config["metrics"], "metrics", str(SEED_004_RECORDS))
            if not m.drop}


def test_every_documented_metric_exists():
    exposed = exposable() | mapped_records()
    missing = [name for name in documented() if "<" not in name and name not in exposed]
    assert not missing, f"documented but never exposed: {missing}"


def test_seed_004_mapping_is_documented_with_its_types():
    docs = documented()
    for name, kind in mapped_records().items():
        assert docs.get(name) == kind, f"{name}: a {kind} by the mapping, documented as " \
                                       f"{docs.get(name)}"
