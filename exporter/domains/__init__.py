"""Event domains: one module per event type, each owning its schema and the metrics it feeds.

`create_domains` builds one of each, keyed by event type (exporter.contract.EVENT_TYPES names
them); a new event type adds its module's class to `DOMAIN_CLASSES`.
"""
from __future__ import annotations

from collections.abc import Sequence

from . import agents, errors, rag, tasks, training, workflows
from .base import Context, Domain
from .generic import GenericRecords
from .llm import LlmCalls
from .llm_settings import LlmSettings
from .mappings import Mapping

__all__ = ["Context", "Domain", "create_domains"]

# Domains that need nothing but the context; generic records and LLM calls also take their
# config sections.
DOMAIN_CLASSES = (agents.AgentStatus, tasks.TaskUpdates, training.TrainingProgress,
                  rag.RagQueries, workflows.WorkflowSteps, errors.Errors)


def create_domains(ctx: Context, mappings: Sequence[Mapping] = (), max_generic_metrics: int = 1000,
                   origin_labels: Sequence[str] = (),
                   llm: LlmSettings | None = None) -> dict[str, Domain]:
    """Every event domain by its event type, with its families registered in the store."""
    made: list[Domain] = [cls(ctx) for cls in DOMAIN_CLASSES]
    made.append(GenericRecords(ctx, mappings, max_generic_metrics, origin_labels))
    made.append(LlmCalls(ctx, llm or LlmSettings()))
    return {domain.name: domain for domain in made}
