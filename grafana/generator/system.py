"""The System dashboard (agent-exporter-system)."""
from __future__ import annotations

from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    HOST_CPU_UTILIZATION_HIGH_RATIO,
    HOST_FILESYSTEM_AVAILABLE_LOW_RATIO,
    HOST_MEMORY_UTILIZATION_HIGH_RATIO,
)

from .dashboard import dashboard
from .panels import Panel, bars, red_above, red_below, stat, timeseries
from .queries import INSTANCE, INSTANCES, JOB, query

UID = "agent-exporter-system"
TITLE = "Agent Exporter · System"



def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "The hosts the exporters run on (psutil): CPU, memory, load, disks, filesystems and "
        "network.",
        ["system"], [JOB, INSTANCE],
        [
            cpu_utilisation(),
            memory_utilisation(),
            load_1_min_per_cpu(),
            cpus(),
            uptime(),
            least_free_filesystem(),
            cpu_utilisation_over_time(),
            cpu_by_mode(),
            memory(),
            memory_utilisation_over_time(),
            load_average(),
            processes_and_threads(),
            disk_throughput(),
            disk_operations(),
            network_throughput(),
            network_errors_and_drops(),
            filesystem_space_left().span(24).height(6),
        ])


def cpu_utilisation() -> Panel:
    return (
        stat(
            "CPU utilisation",
            "CPU busy share over 5 minutes; HostCpuUtilizationHigh fires above 90 %.",
            "percentunit",
            red_above(HOST_CPU_UTILIZATION_HIGH_RATIO, orange=0.7))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_cpu_utilization:ratio_rate5m{{{INSTANCES}}}",
            "{{instance}}"))
    )


def memory_utilisation() -> Panel:
    return (
        stat(
            "Memory utilisation",
            "Memory in use; HostMemoryUtilizationHigh fires above 90 %.",
            "percentunit",
            red_above(HOST_MEMORY_UTILIZATION_HIGH_RATIO, orange=0.7))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_memory_utilization:ratio{{{INSTANCES}}}",
            "{{instance}}"))
    )


def load_1_min_per_cpu() -> Panel:
    return (
        stat(
            "Load (1 min) per CPU",
            "1-minute load average divided by the CPU count.",
            "short",
            red_above(2, orange=1))
        .decimals(2)
        .with_target(query(
            f"system_load1{{{INSTANCES}}} / system_cpus{{{INSTANCES}}}",
            "{{instance}}"))
    )


def cpus() -> Panel:
    return (
        stat("CPUs", "Logical CPUs of the host (psutil.cpu_count()).", "short")
        .decimals(0)
        .with_target(query(f"system_cpus{{{INSTANCES}}}", "{{instance}}"))
    )


def uptime() -> Panel:
    return (
        stat("Uptime", "Time since the host booted.", "s")
        .with_target(query(f"time() - system_boot_time_seconds{{{INSTANCES}}}", "{{instance}}"))
    )


def least_free_filesystem() -> Panel:
    return (
        stat(
            "Least free filesystem",
            "Smallest share of space left for unprivileged users over the filesystems; "
            "HostFilesystemFillingUp fires under 40 % when the trend predicts a full disk "
            "within 24 h.",
            "percentunit",
            red_below(0.1, orange=HOST_FILESYSTEM_AVAILABLE_LOW_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"min(mountpoint:system_filesystem_avail:ratio{{{INSTANCES}}})",
            "least free"))
    )


def cpu_utilisation_over_time() -> Panel:
    return (
        timeseries(
            "CPU utilisation over time",
            "CPU busy share over 5 minutes per host; the dashed line is the 90 % alert "
            "threshold.",
            "percentunit",
            red_above(HOST_CPU_UTILIZATION_HIGH_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_cpu_utilization:ratio_rate5m{{{INSTANCES}}}",
            "{{instance}}"))
    )


def cpu_by_mode() -> Panel:
    return (
        timeseries(
            "CPU by mode",
            "Share of all CPUs spent in each non-idle mode (user, system, iowait, …).",
            "percentunit")
        .stacking(sdk_common.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
        .fill_opacity(40)
        .min(0)
        .with_target(query(
            f'sum by (job, instance, mode) (rate(system_cpu_seconds_total{{{INSTANCES}, '
            'mode!~"idle|guest|guest_nice"}[$__rate_interval])) / on (job, instance) '
            f'group_left () system_cpus{{{INSTANCES}}}',
            "{{instance}} {{mode}}"))
    )


def memory() -> Panel:
    return (
        timeseries("Memory", "Memory used, available and total; swap used.", "bytes")
        .min(0)
        .with_target(query(f"system_memory_used_bytes{{{INSTANCES}}}", "{{instance}} used"))
        .with_target(query(
            f"system_memory_available_bytes{{{INSTANCES}}}",
            "{{instance}} available"))
        .with_target(query(f"system_memory_total_bytes{{{INSTANCES}}}", "{{instance}} total"))
        .with_target(query(f"system_swap_used_bytes{{{INSTANCES}}}", "{{instance}} swap used"))
    )


def memory_utilisation_over_time() -> Panel:
    return (
        timeseries(
            "Memory utilisation over time",
            "1 - available / total; HostMemoryUtilizationHigh fires above 90 %.",
            "percentunit",
            red_above(HOST_MEMORY_UTILIZATION_HIGH_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_memory_utilization:ratio{{{INSTANCES}}}",
            "{{instance}}"))
    )


def load_average() -> Panel:
    return (
        timeseries(
            "Load average",
            "1, 5 and 15-minute load averages against the number of CPUs.",
            "short")
        .min(0)
        .with_target(query(f"system_load1{{{INSTANCES}}}", "{{instance}} 1m"))
        .with_target(query(f"system_load5{{{INSTANCES}}}", "{{instance}} 5m"))
        .with_target(query(f"system_load15{{{INSTANCES}}}", "{{instance}} 15m"))
        .with_target(query(f"system_cpus{{{INSTANCES}}}", "{{instance}} CPUs"))
    )


def processes_and_threads() -> Panel:
    return (
        timeseries("Processes and threads", "Processes and threads on the host.", "short")
        .min(0)
        .with_target(query(f"system_processes{{{INSTANCES}}}", "{{instance}} processes"))
        .with_target(query(f"system_threads{{{INSTANCES}}}", "{{instance}} threads"))
    )


def disk_throughput() -> Panel:
    return (
        timeseries("Disk throughput", "Bytes read and written per second, per disk.", "Bps")
        .min(0)
        .with_target(query(
            f"rate(system_disk_read_bytes_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} {{device}} read"))
        .with_target(query(
            f"rate(system_disk_written_bytes_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} {{device}} written"))
    )


def disk_operations() -> Panel:
    return (
        timeseries("Disk operations", "Reads and writes completed per second, per disk.", "iops")
        .min(0)
        .with_target(query(
            f"rate(system_disk_reads_completed_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} {{device}} reads"))
        .with_target(query(
            f"rate(system_disk_writes_completed_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} {{device}} writes"))
    )


def network_throughput() -> Panel:
    return (
        timeseries(
            "Network throughput",
            "Bytes received and transmitted per second, per interface.",
            "Bps")
        .min(0)
        .with_target(query(
            f"rate(system_network_receive_bytes_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} {{interface}} received"))
        .with_target(query(
            f"rate(system_network_transmit_bytes_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} {{interface}} transmitted"))
    )


def network_errors_and_drops() -> Panel:
    return (
        timeseries(
            "Network errors and drops",
            "Packets per second that failed or were dropped, all interfaces of a host.",
            "pps")
        .min(0)
        .with_target(query(
            "sum by (instance) "
            f"(rate(system_network_receive_errors_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{instance}} receive errors"))
        .with_target(query(
            "sum by (instance) "
            f"(rate(system_network_transmit_errors_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{instance}} transmit errors"))
        .with_target(query(
            "sum by (instance) "
            f"(rate(system_network_receive_drop_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{instance}} receive drops"))
        .with_target(query(
            "sum by (instance) "
            f"(rate(system_network_transmit_drop_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{instance}} transmit drops"))
    )


def filesystem_space_left() -> Panel:
    return (
        bars(
            "Filesystem space left",
            "Share of each filesystem's space left for unprivileged users (what df shows as "
            "available); HostFilesystemFillingUp needs under 40 % and a filling trend.",
            "percentunit",
            red_below(0.1, orange=HOST_FILESYSTEM_AVAILABLE_LOW_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"mountpoint:system_filesystem_avail:ratio{{{INSTANCES}}}",
            "{{instance}} {{mountpoint}}"))
    )
