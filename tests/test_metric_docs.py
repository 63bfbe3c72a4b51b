"""docs/metrics.md + docs/collectors.md list exactly what the exporter can expose."""
from __future__ import annotations

from exporter.app import Exporter
from exporter.config import load
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


def test_every_documented_metric_exists():
    exposed = exposable()
    missing = [name for name in documented() if "<" not in name and name not in exposed]
    assert not missing, f"documented but never exposed: {missing}"
