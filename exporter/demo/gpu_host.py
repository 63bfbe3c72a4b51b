"""A remote GPU host the way seed 000's pattern 3 reports one: every 30 s it writes its reading
to the Redis hash `metrics:gpu:current` (the exporter's key check turns it into `gpu_reported_*`)
and pushes the temperature and utilisation to the seed's 24-hour lists.

The demo reads no NVML: this host is simulated, a training GPU that is busy and cool enough
unless the `gpu-hot` incident makes its cooling fail, when it also raises the critical errors
(`events:errors:critical`) that seed 000's error-coordinator correlates with the heat.
"""
from __future__ import annotations

import json
import random
import time

from ..publisher import Publisher
from .engine import Sim

GPU_INTERVAL_SECONDS = 30       # seed 000: "every 30 seconds"
HISTORY_SECONDS = 86400         # the seed's 24 h retention of the lists
MEMORY_TOTAL_MB = 81920         # an 80 GB training GPU
POWER_LIMIT_WATTS = 400.0
HOT_CELSIUS = (91.0, 95.0)      # incident: above both seed thresholds (85 high, 90 critical)
MEMORY_NOISE_MB = 200           # batch to batch: far from the 1000 MB of a leak in 5 minutes
CRITICAL_ERRORS = ("CUDA error: an illegal memory access was encountered",
                   "NCCL watchdog timeout: collective operation stalled",
                   "GPU has fallen off the bus (Xid 79)")


class GpuHost:
    """One GPU's reading, every GPU_INTERVAL_SECONDS, healthy unless `overheating`."""

    def __init__(self, sim: Sim, pub: Publisher, rng: random.Random) -> None:
        self.sim, self.pub, self.rng = sim, pub, rng
        self.overheating = False    # incident: cooling failed; critical errors follow
        self.memory_mb = MEMORY_TOTAL_MB * rng.uniform(0.55, 0.75)  # the model and its batches

    def start(self) -> None:
        self.report()
        self.sim.every(GPU_INTERVAL_SECONDS, self.report)

    def reading(self) -> dict[str, float]:
        """Utilisation 65-95 %, memory steady at 55-75 % of 80 GB (no growth), temperature
        following the load (67-77 °C) or the failed cooling (91-95 °C)."""
        r = self.rng
        utilization = r.uniform(65, 95)
        temperature = (r.uniform(*HOT_CELSIUS) if self.overheating
                       else 48 + 0.3 * utilization + r.gauss(0, 1.5))
        return {
            "utilization_percent": round(utilization, 1),
            "memory_used_mb": round(self.memory_mb + r.uniform(-MEMORY_NOISE_MB, MEMORY_NOISE_MB)),
            "memory_total_mb": MEMORY_TOTAL_MB,
            "temperature_celsius": round(temperature, 1),
            "power_draw_watts": round(min(POWER_LIMIT_WATTS, 120 + 2.8 * utilization), 1),
        }

    def report(self) -> None:
        reading = self.reading()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        pipe = self.pub.redis.pipeline(transaction=False)
        for field, value in reading.items():
            pipe.hset("metrics:gpu:current", field, value)
        for key, name in (("metrics:gpu:temperature", "temperature_celsius"),
                          ("metrics:gpu:utilization", "utilization_percent"),
                          ("metrics:gpu:memory_used_mb", "memory_used_mb")):
            pipe.lpush(key, json.dumps({"value": reading[name], "timestamp": stamp}))
            pipe.ltrim(key, 0, HISTORY_SECONDS // GPU_INTERVAL_SECONDS - 1)
            pipe.expire(key, HISTORY_SECONDS)
        pipe.execute()
        if self.overheating:
            self.pub.error("critical", component="ml-engineer",
                           error=self.rng.choice(CRITICAL_ERRORS),
                           error_id=f"err-{self.rng.getrandbits(48):012x}")
