"""The GPU dashboard (agent-exporter-gpu)."""
from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    GPU_LOW_UTILIZATION_RATIO,
    GPU_MEMORY_EXHAUSTION_RATIO,
    GPU_MEMORY_LEAK_BYTES,
    GPU_TEMPERATURE_CRITICAL_CELSIUS,
    GPU_TEMPERATURE_HIGH_CELSIUS,
)

from .dashboard import dashboard
from .panels import (
    Panel,
    organize,
    red_above,
    red_below,
    stat,
    table,
    timeseries,
    value_texts,
)
from .queries import INSTANCE, INSTANCES, JOB, Filter, query, selector, table_query

UID = "agent-exporter-gpu"
TITLE = "Agent Exporter · GPU"
# Values from the unified series: NVML's GPUs and "metrics:gpu:current" (the Redis-reported one).
GPU = Filter("gpu", "GPU", f"gpu:gpu_utilization_ratio:any_source{{{selector(JOB, INSTANCE)}}}")
GPUS = selector(JOB, INSTANCE, GPU)


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "NVIDIA GPUs of the exporters' hosts (NVML) and GPUs that remote hosts report through "
        "Redis (metrics:gpu:current). Hosts without a driver show \"No GPU reported\".",
        ["gpu"], [JOB, INSTANCE, GPU],
        [
            nvml().span(6),
            gpus().span(6),
            mean_utilisation().span(6),
            gpus_reported_through_redis().span(6),
            utilisation(),
            memory_used(),
            memory_in_bytes(),
            memory_growth_per_5_minutes(),
            temperature(),
            power(),
            throttled_gpus_by_reason().height(7),
            sm_clock().height(7),
            gpu_inventory().height(6),
        ])


def nvml() -> Panel:
    return (
        stat(
            "NVML",
            "Whether the exporter could initialise NVML (gpu_nvml_available). 0 means no "
            "NVIDIA driver or pynvml on that host: its GPU panels stay empty.",
            "none",
            red_below(1))
        .no_value("No GPU reported")
        .mappings(value_texts((1, "NVML available", "green"), (0, "No GPU reported (no NVIDIA driver)", "text")))
        .with_target(query(
            f"max by (instance) (gpu_nvml_available{{{INSTANCES}}})",
            "{{instance}}"))
    )


def gpus() -> Panel:
    return (
        stat("GPUs", "GPUs NVML sees on the selected hosts.", "short")
        .decimals(0)
        .no_value("No GPU reported")
        .mappings(value_texts((0, "No GPU reported", "text")))
        .with_target(query(f"sum(gpu_count{{{INSTANCES}}}) or vector(0)", "GPUs"))
    )


def mean_utilisation() -> Panel:
    return (
        stat(
            "Mean utilisation",
            "Mean utilisation of the GPUs of each host, the GPU reported through Redis included.",
            "percentunit",
            red_below(GPU_LOW_UTILIZATION_RATIO))
        .min(0)
        .max(1)
        .no_value("No GPU reported")
        .with_target(query(
            f"avg by (instance) (gpu:gpu_utilization_ratio:any_source{{{GPUS}}})",
            "{{instance}}"))
    )


def gpus_reported_through_redis() -> Panel:
    return (
        stat(
            "GPUs reported through Redis",
            "GPUs that remote hosts report in the Redis hash metrics:gpu:current (seed 000 "
            "pattern 3).",
            "short")
        .decimals(0)
        .mappings(value_texts((0, "none", "text")))
        .with_target(query(
            f"count(gpu_reported_utilization_ratio{{{INSTANCES}}}) or vector(0)",
            "reported"))
    )


def utilisation() -> Panel:
    return (
        timeseries(
            "Utilisation",
            "GPU busy share per GPU, NVML's and the one reported through Redis (GPU "
            "metrics:gpu:current). GpuUnderutilizedWhileTraining fires under 30 % while a "
            "project trains.",
            "percentunit",
            red_below(GPU_LOW_UTILIZATION_RATIO))
        .min(0)
        .max(1)
        .no_value("No GPU reported")
        .with_target(query(
            f"gpu:gpu_utilization_ratio:any_source{{{GPUS}}}",
            "{{instance}} GPU {{gpu}}"))
    )


def memory_used() -> Panel:
    return (
        timeseries(
            "Memory used",
            "Memory used over total per GPU, the one reported through Redis included; "
            "GpuMemoryExhaustion fires above 95 %.",
            "percentunit",
            red_above(GPU_MEMORY_EXHAUSTION_RATIO, orange=0.85))
        .min(0)
        .max(1)
        .no_value("No GPU reported")
        .with_target(query(f"gpu:gpu_memory_used:ratio{{{GPUS}}}", "{{instance}} GPU {{gpu}}"))
    )


def memory_in_bytes() -> Panel:
    return (
        timeseries("Memory in bytes", "Memory used and total per GPU, NVML's and the one "
                   "reported through Redis.", "bytes")
        .min(0)
        .no_value("No GPU reported")
        .with_target(query(
            f"gpu:gpu_memory_used_bytes:any_source{{{GPUS}}}",
            "{{instance}} GPU {{gpu}} used"))
        .with_target(query(
            f"gpu:gpu_memory_total_bytes:any_source{{{GPUS}}}",
            "{{instance}} GPU {{gpu}} total"))
    )


def memory_growth_per_5_minutes() -> Panel:
    return (
        timeseries(
            "Memory growth per 5 minutes",
            "Memory used now minus 5 minutes ago, per GPU (seed 000 memory-leak check); "
            "GpuMemoryLeak fires above 1000 MiB when memory also rose in each of those minutes.",
            "bytes",
            red_above(GPU_MEMORY_LEAK_BYTES))
        .no_value("No GPU reported")
        .with_target(query(
            f"gpu:gpu_memory_used_bytes:delta5m{{{GPUS}}}",
            "{{instance}} GPU {{gpu}}"))
    )


def temperature() -> Panel:
    return (
        timeseries(
            "Temperature",
            "GPU temperature, NVML's and the one reported through Redis; GpuTemperatureHigh "
            "fires above 85 °C, GpuTemperatureCritical above 90 °C.",
            "celsius",
            red_above(GPU_TEMPERATURE_CRITICAL_CELSIUS, orange=GPU_TEMPERATURE_HIGH_CELSIUS))
        .no_value("No GPU reported")
        .with_target(query(
            f"gpu:gpu_temperature_celsius:any_source{{{GPUS}}}",
            "{{instance}} GPU {{gpu}}"))
    )


def power() -> Panel:
    return (
        timeseries("Power", "Power draw and enforced power limit per GPU.", "watt")
        .min(0)
        .no_value("No GPU reported")
        .with_target(query(f"gpu_power_watts{{{GPUS}}}", "{{instance}} GPU {{gpu}}"))
        .with_target(query(f"gpu_power_limit_watts{{{GPUS}}}", "{{instance}} GPU {{gpu}} limit"))
        .with_target(query(
            f"gpu_reported_power_watts{{{INSTANCES}}}",
            "{{instance}} reported (Redis)"))
    )


def throttled_gpus_by_reason() -> Panel:
    return (
        timeseries(
            "Throttled GPUs by reason",
            "GPUs whose clocks are held down, by NVML clock-event reason (power cap, thermal, "
            "…).",
            "short")
        .decimals(0)
        .no_value("No GPU reported")
        .with_target(query(f"sum by (reason) (gpu_throttle_reason{{{GPUS}}})", "{{reason}}"))
    )


def sm_clock() -> Panel:
    return (
        timeseries("SM clock", "Streaming-multiprocessor clock per GPU.", "hertz")
        .no_value("No GPU reported")
        .with_target(query(f"gpu_sm_clock_hertz{{{GPUS}}}", "{{instance}} GPU {{gpu}}"))
    )


def gpu_inventory() -> Panel:
    return (
        table("GPU inventory", "Each GPU NVML reports: model, driver and UUID.", "none")
        .no_value("No GPU reported")
        .with_target(table_query(f"gpu_info{{{GPUS}}}"))
        .with_transformation(organize(
            {
                "gpu": "GPU",
                "name": "Model",
                "driver_version": "Driver",
                "uuid": "UUID",
                "instance": "Host",
            },
            hide=("Value",),
            order=("instance", "gpu", "name", "driver_version", "uuid")))
    )
