"""Training progress (`events:training:progress`): the latest loss, WER and step per project.

Seed shape: {projectId, step, loss, wer, timestamp}; every other numeric field becomes
`training_metric{name=…}`. A loss or WER of NaN/±Infinity (sent as a string, JSON has no NaN)
is kept: a diverged run is a measurement, and the divergence alert reads it.
"""
from __future__ import annotations

from ..contract import PUBLISHER_FIELDS
from ..events import check_label, label, measurement, number
from .base import Context

OWN_FIELDS = frozenset({"projectId", "project_id", "step", "loss", "wer", "timestamp",
                        *PUBLISHER_FIELDS})


class TrainingProgress:
    name = "training"

    def __init__(self, ctx: Context) -> None:
        family = ctx.family
        self.limit = ctx.max_label_length
        self.clock = ctx.clock
        self.loss = family("training_loss", "gauge", "Latest training loss per project.", ["project"])
        self.wer = family("training_wer", "gauge", "Latest word error rate (0-1) per project.",
                          ["project"])
        self.step = family("training_step", "gauge", "Latest training step per project.", ["project"])
        self.metric = family("training_metric", "gauge",
                             "Latest value of every other numeric field of a training event.",
                             ["project", "name"])
        self.updates = family("training_updates_total", "counter",
                              "Training progress events received per project.", ["project"])
        self.last = family("training_last_update_timestamp_seconds", "gauge",
                           "When the exporter last received a progress event for the project.",
                           ["project"])

    def handle(self, event: dict, channel: str) -> None:
        project = label(event, "projectId", self.limit)
        step = number(event, "step", minimum=0)
        loss = measurement(event, "loss")
        wer = measurement(event, "wer")
        extra = []
        for name, value in event.items():
            if name in OWN_FIELDS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            check_label("field name", name, self.limit)
            extra.append((name, float(value)))

        key = (project,)
        if step is not None:
            self.step.set(key, step)
        if loss is not None:
            self.loss.set(key, loss)
        if wer is not None:
            self.wer.set(key, wer)
        for name, value in extra:
            self.metric.set((project, name), value)
        self.updates.inc(key)
        self.last.set(key, self.clock.now)
