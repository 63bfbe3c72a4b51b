"""Host collector: its values against psutil read here around the scrape, and a real scrape
that promtool accepts.
"""
from __future__ import annotations

import os
import subprocess
from collections import namedtuple

import psutil
import pytest

from exporter.collectors.host import HostCollector
from exporter.collectors.registry import CollectorSettings
from tests.support.procs import require_binary, value


def collect() -> dict[tuple[str, frozenset], float]:
    collector = HostCollector(CollectorSettings())
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in collector.collect() for s in family.samples}


def between(low: float, got: float | None, high: float) -> bool:
    return got is not None and low <= got <= high


def test_values_match_psutil():
    cpu_before, net_before = psutil.cpu_times(), psutil.net_io_counters(pernic=True)
    disk_before = psutil.disk_io_counters(perdisk=True) or {}
    load_before = psutil.getloadavg()
    s = collect()
    cpu_after, net_after = psutil.cpu_times(), psutil.net_io_counters(pernic=True)
    disk_after = psutil.disk_io_counters(perdisk=True) or {}
    load_after = psutil.getloadavg()

    for mode in cpu_before._fields:
        got = value(s, "system_cpu_seconds_total", mode=mode)
        assert between(getattr(cpu_before, mode), got, getattr(cpu_after, mode)), mode
    assert value(s, "system_cpus") == psutil.cpu_count()
    for i, name in enumerate(("system_load1", "system_load5", "system_load15")):
        assert between(min(load_before[i], load_after[i]), value(s, name),
                       max(load_before[i], load_after[i])), name

    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    assert value(s, "system_memory_total_bytes") == memory.total
    assert value(s, "system_memory_available_bytes") == pytest.approx(memory.available,
                                                                       rel=0.05)
    assert value(s, "system_memory_used_bytes") == pytest.approx(memory.used, rel=0.05,
                                                                  abs=64 << 20)
    assert value(s, "system_swap_total_bytes") == swap.total
    assert value(s, "system_swap_used_bytes") == pytest.approx(swap.used, abs=64 << 20)

    for nic, before in net_before.items():
        after = net_after[nic]
        assert between(before.bytes_recv,
                       value(s, "system_network_receive_bytes_total", interface=nic),
                       after.bytes_recv), nic
        assert between(before.packets_sent,
                       value(s, "system_network_transmit_packets_total", interface=nic),
                       after.packets_sent), nic
        assert value(s, "system_network_receive_drop_total", interface=nic) is not None
    for device, before in disk_before.items():
        got = value(s, "system_disk_written_bytes_total", device=device)
        if device.startswith(("loop", "zram", "ram")):
            assert got is None, device
        elif device in disk_after:
            assert between(before.write_bytes, got, disk_after[device].write_bytes), device

    root = next(p for p in psutil.disk_partitions(all=False) if p.mountpoint == "/")
    labels = {"device": root.device, "fstype": root.fstype, "mountpoint": "/"}
    st = os.statvfs("/")
    assert value(s, "system_filesystem_size_bytes", **labels) == st.f_blocks * st.f_frsize
    assert value(s, "system_filesystem_avail_bytes", **labels) == pytest.approx(
        psutil.disk_usage("/").free, abs=256 << 20)
    assert value(s, "system_filesystem_free_bytes", **labels) == pytest.approx(
        st.f_bfree * st.f_frsize, abs=256 << 20)

    assert value(s, "system_boot_time_seconds") == psutil.boot_time()
    processes = len(psutil.pids())
    assert value(s, "system_processes") == pytest.approx(processes, abs=max(10, processes / 5))
    assert value(s, "system_threads") >= value(s, "system_processes")


Partition = namedtuple("Partition", "device mountpoint fstype opts")
DiskIO = namedtuple("DiskIO", "read_count write_count read_bytes write_bytes")


def test_pseudo_filesystems_partitions_and_virtual_disks_left_out(monkeypatch):
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: [
        Partition("/dev/vda", "/", "ext4", "rw"),
        Partition("/dev/vda", "/", "ext4", "rw,bind"),  # the same mount point twice
        Partition("tmpfs", "/tmp", "tmpfs", "rw"),
        Partition("/dev/loop3", "/", "squashfs", "ro"),
        Partition("overlay", "/", "overlay", "rw"),
    ])
    io = DiskIO(10, 20, 4096, 8192)
    monkeypatch.setattr(psutil, "disk_io_counters", lambda perdisk=False: {
        name: io for name in ("sda", "sda1", "nvme0n1", "nvme0n1p2", "loop0", "zram0", "dm-0")})

    s = collect()
    assert {dict(labels)["fstype"] for name, labels in s
            if name == "system_filesystem_size_bytes"} == {"ext4"}
    assert len([1 for name, _ in s if name == "system_filesystem_avail_bytes"]) == 1
    assert {dict(labels)["device"] for name, labels in s
            if name == "system_disk_reads_completed_total"} == {"sda", "nvme0n1", "dm-0"}
    assert value(s, "system_disk_written_bytes_total", device="sda") == 8192


def test_real_scrape_passes_promtool(redis_url, start_exporter):
    promtool = require_binary("promtool")
    text = start_exporter(redis_url).scrape()
    assert "\nsystem_cpu_seconds_total{" in text
    assert "\nsystem_filesystem_size_bytes{" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
