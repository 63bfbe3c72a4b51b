"""Host collector (`system_`): what the seeds watch on the machine, read from psutil per scrape.

Raw counters and sizes in base units (seconds, bytes), never percentages or rates: utilisation
ratios are recording rules over these. Disk partitions and virtual block devices (loop, ram,
zram, fd) are left out as node_exporter does, so a device's I/O is not counted twice; pseudo
and in-memory filesystems are left out of the filesystem sizes.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable

import psutil
from prometheus_client.core import Metric

from .registry import Built, CollectorSettings, by_exposed_name, counter, gauge, register

# node_exporter's default --collector.diskstats.device-exclude.
DISK_EXCLUDE = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")
PSEUDO_FSTYPES = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fuse.lxcfs", "fuse.snapfuse", "fusectl", "hugetlbfs", "mqueue",
    "nsfs", "overlay", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs",
    "squashfs", "sysfs", "tmpfs", "tracefs",
})
DISK_FIELDS = (  # (metric, psutil field, help)
    ("system_disk_read_bytes_total", "read_bytes", "Bytes read from the block device."),
    ("system_disk_written_bytes_total", "write_bytes", "Bytes written to the block device."),
    ("system_disk_reads_completed_total", "read_count", "Reads completed by the block device."),
    ("system_disk_writes_completed_total", "write_count",
     "Writes completed by the block device."),
)
NET_FIELDS = (
    ("system_network_receive_bytes_total", "bytes_recv", "Bytes received on the interface."),
    ("system_network_transmit_bytes_total", "bytes_sent", "Bytes sent on the interface."),
    ("system_network_receive_packets_total", "packets_recv",
     "Packets received on the interface."),
    ("system_network_transmit_packets_total", "packets_sent", "Packets sent on the interface."),
    ("system_network_receive_errors_total", "errin", "Receive errors on the interface."),
    ("system_network_transmit_errors_total", "errout", "Transmit errors on the interface."),
    ("system_network_receive_drop_total", "dropin",
     "Incoming packets dropped on the interface."),
    ("system_network_transmit_drop_total", "dropout",
     "Outgoing packets dropped on the interface."),
)
FS_FIELDS = (
    ("system_filesystem_size_bytes", "Size of the filesystem."),
    ("system_filesystem_free_bytes", "Free space on the filesystem, including root's reserve."),
    ("system_filesystem_avail_bytes", "Space on the filesystem available to non-root users."),
)
FS_LABELS = ["device", "fstype", "mountpoint"]


@register("host", True, "host CPU, memory, load, disk, network, filesystems (psutil)")
class HostCollector:
    """`system_*` from psutil; every family is built fresh on each scrape."""

    def __init__(self, settings: CollectorSettings) -> None:
        """Nothing to keep: psutil reads the kernel's counters on every call."""

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        for mode, seconds in psutil.cpu_times()._asdict().items():
            f["system_cpu_seconds_total"].add_metric([mode], seconds)
        f["system_cpus"].add_metric([], psutil.cpu_count() or 0)
        for name, load in zip(("system_load1", "system_load5", "system_load15"),
                              psutil.getloadavg()):
            f[name].add_metric([], load)

        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        f["system_memory_total_bytes"].add_metric([], memory.total)
        f["system_memory_available_bytes"].add_metric([], memory.available)
        f["system_memory_used_bytes"].add_metric([], memory.used)
        f["system_swap_total_bytes"].add_metric([], swap.total)
        f["system_swap_used_bytes"].add_metric([], swap.used)

        for device, io in sorted((psutil.disk_io_counters(perdisk=True) or {}).items()):
            if not DISK_EXCLUDE.match(device):
                for name, attr, _ in DISK_FIELDS:
                    f[name].add_metric([device], getattr(io, attr))
        for interface, nic in sorted(psutil.net_io_counters(pernic=True).items()):
            for name, attr, _ in NET_FIELDS:
                f[name].add_metric([interface], getattr(nic, attr))
        self._filesystems(f)

        f["system_boot_time_seconds"].add_metric([], psutil.boot_time())
        processes = threads = 0
        for process in psutil.process_iter(["num_threads"]):
            processes += 1
            threads += process.info["num_threads"] or 0
        f["system_processes"].add_metric([], processes)
        f["system_threads"].add_metric([], threads)
        return f.values()

    @staticmethod
    def _filesystems(f: dict[str, Built]) -> None:
        """Sizes of real filesystems, once per mount point (statvfs, as `df` and node_exporter)."""
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=False):
            if part.fstype in PSEUDO_FSTYPES or part.mountpoint in seen:
                continue
            seen.add(part.mountpoint)
            try:
                st = os.statvfs(part.mountpoint)
            except OSError:
                continue  # unmounted or unreadable since the partition list was read
            labels = [part.device, part.fstype, part.mountpoint]
            for (name, _), blocks in zip(FS_FIELDS, (st.f_blocks, st.f_bfree, st.f_bavail)):
                f[name].add_metric(labels, blocks * st.f_frsize)

    @staticmethod
    def _families() -> dict[str, Built]:
        families: list[Built] = [
            counter("system_cpu_seconds_total",
                    "CPU time spent in each mode, summed over all CPUs.", ["mode"]),
            gauge("system_cpus", "Logical CPUs."),
            gauge("system_load1", "1-minute load average."),
            gauge("system_load5", "5-minute load average."),
            gauge("system_load15", "15-minute load average."),
            gauge("system_memory_total_bytes", "Physical memory."),
            gauge("system_memory_available_bytes",
                  "Memory available to start new work without swapping."),
            gauge("system_memory_used_bytes", "Memory in use (psutil: total - free - buffers - "
                                              "cache on Linux)."),
            gauge("system_swap_total_bytes", "Swap space."),
            gauge("system_swap_used_bytes", "Swap space in use."),
            *(counter(name, help_text, ["device"]) for name, _, help_text in DISK_FIELDS),
            *(counter(name, help_text, ["interface"]) for name, _, help_text in NET_FIELDS),
            *(gauge(name, help_text, FS_LABELS) for name, help_text in FS_FIELDS),
            gauge("system_boot_time_seconds", "When the host booted, in seconds since the epoch."),
            gauge("system_processes", "Processes on the host."),
            gauge("system_threads", "Threads of all processes on the host."),
        ]
        return by_exposed_name(families)
