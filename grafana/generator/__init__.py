"""The bundle's Grafana dashboards, generated from Python with Grafana's typed builders
(grafana-foundation-sdk, a development dependency: the exporter never imports it).

One module per dashboard; `DASHBOARDS` maps each file under grafana/dashboards/ to the function
that builds it. `python -m grafana.generator` (./scripts/dashboards) writes the files, `--check`
says which committed files differ from what the code generates. How to add a panel:
docs/dashboards.md.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.models.dashboard import Dashboard

from . import (
    agents,
    exporter_health,
    gpu,
    llm,
    overview,
    rag,
    system,
    tasks,
    training,
    workflows,
)
from .dashboard import render

OUTPUT = Path(__file__).resolve().parents[1] / "dashboards"
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "overview.json": overview.build,
    "swarm/agents.json": agents.build,
    "swarm/tasks.json": tasks.build,
    "swarm/rag.json": rag.build,
    "swarm/training.json": training.build,
    "swarm/workflows.json": workflows.build,
    "swarm/llm.json": llm.build,
    "infrastructure/gpu.json": gpu.build,
    "infrastructure/system.json": system.build,
    "infrastructure/exporter.json": exporter_health.build,
}


def generate() -> dict[str, str]:
    """Each dashboard's path under grafana/dashboards/ → its JSON text."""
    return {path: render(build()) for path, build in DASHBOARDS.items()}


def stale(output: Path = OUTPUT) -> list[str]:
    """The files under `output` that differ from the generated ones, are missing, or are
    dashboards the code does not generate."""
    generated = generate()
    found = [path for path, text in generated.items()
             if not (output / path).is_file() or (output / path).read_text() != text]
    found += [str(path.relative_to(output)) for path in sorted(output.rglob("*.json"))
              if str(path.relative_to(output)) not in generated]
    return found
