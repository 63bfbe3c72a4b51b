"""GPU collector: NVML faked at the pynvml functions the collector calls (this machine has no
GPU), and the real no-driver path as it is here.
"""
from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass, field
from typing import Any

import pynvml
import pytest

from exporter.collectors.gpu import GpuCollector
from exporter.collectors.registry import CollectorSettings
from tests.support.procs import value


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)  # pynvml maps the code to its subclass, as the library does


NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED


@dataclass
class FakeGpu:
    """One device's readings in NVML's own units; an int code in `fails` raises that error."""

    uuid: str
    name: str
    readings: dict[str, Any]
    fails: dict[str, int] = field(default_factory=dict)


GPUS = [
    FakeGpu("GPU-5ad6c1b2-3f1e-4c1a-9b0e-6f2d1a7c9e01", "NVIDIA A100-SXM4-80GB", {
        "util": pynvml.c_nvmlUtilization_t(gpu=87, memory=41),
        "memory": pynvml.c_nvmlMemory_t(total=85_899_345_920, free=25_899_345_920,
                                        used=60_000_000_000),
        "temperature": 64, "power": 312_456, "limit": 400_000, "energy": 9_876_543_210,
        "clock_sm": 1410, "clock_mem": 1593, "ecc_corrected": 3, "ecc_uncorrected": 0,
        "reasons": 0x4 | 0x20,  # sw power cap + sw thermal slowdown
    }, fails={"fan": NOT_SUPPORTED}),  # passively cooled
    FakeGpu("GPU-0e9b7d44-8c2a-4f61-b3d5-2a7e91c04f88", "NVIDIA GeForce RTX 4090", {
        "util": pynvml.c_nvmlUtilization_t(gpu=12, memory=5),
        "memory": pynvml.c_nvmlMemory_t(total=25_757_220_864, free=24_000_000_000,
                                        used=1_757_220_864),
        "temperature": 45, "power": 31_200, "limit": 450_000, "energy": 1_234_567,
        "clock_sm": 210, "clock_mem": 405, "fan": 30, "reasons": 0x1,  # idle
    }, fails={"ecc_corrected": NOT_SUPPORTED, "ecc_uncorrected": NOT_SUPPORTED}),
]
# Fell off the bus after its utilisation was read: none of its readings may be exported.
GPUS.append(FakeGpu("GPU-3c1f00aa-1111-4222-8333-944455556666", "NVIDIA A100-SXM4-80GB",
                    GPUS[0].readings, fails={"memory": pynvml.NVML_ERROR_GPU_IS_LOST}))


class FakeNvml:
    """Replaces the pynvml functions the collector calls; counts nvmlInit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, event_reasons: bool = True,
                 init_error: int | None = None) -> None:
        self.inits = 0
        self.init_error = init_error
        self.event_reasons = event_reasons
        patches = {
            "nvmlInit": self.init,
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlDeviceGetCount": lambda: len(GPUS),
            "nvmlDeviceGetHandleByIndex": lambda i: GPUS[i],
            "nvmlDeviceGetUUID": lambda h: h.uuid,
            "nvmlDeviceGetName": lambda h: h.name,
            "nvmlDeviceGetUtilizationRates": lambda h: self.read(h, "util"),
            "nvmlDeviceGetMemoryInfo": lambda h: self.read(h, "memory"),
            "nvmlDeviceGetTemperature": lambda h, sensor: self.read(h, "temperature", sensor,
                                                                    pynvml.NVML_TEMPERATURE_GPU),
            "nvmlDeviceGetPowerUsage": lambda h: self.read(h, "power"),
            "nvmlDeviceGetEnforcedPowerLimit": lambda h: self.read(h, "limit"),
            "nvmlDeviceGetTotalEnergyConsumption": lambda h: self.read(h, "energy"),
            "nvmlDeviceGetClockInfo": lambda h, clock: self.read(
                h, {pynvml.NVML_CLOCK_SM: "clock_sm", pynvml.NVML_CLOCK_MEM: "clock_mem"}[clock]),
            "nvmlDeviceGetFanSpeed": lambda h: self.read(h, "fan"),
            "nvmlDeviceGetTotalEccErrors": self.ecc,
            "nvmlDeviceGetCurrentClocksEventReasons": self.new_reasons,
            "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: self.read(h, "reasons"),
        }
        for name, function in patches.items():
            monkeypatch.setattr(pynvml, name, function)

    def init(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise nvml_error(self.init_error)

    @staticmethod
    def read(gpu: FakeGpu, what: str, arg: Any = None, expected: Any = None) -> Any:
        assert arg == expected
        if what in gpu.fails:
            raise nvml_error(gpu.fails[what])
        return gpu.readings[what]

    def ecc(self, gpu: FakeGpu, error_type: int, counter_type: int) -> int:
        assert counter_type == pynvml.NVML_VOLATILE_ECC
        kind = {pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED: "ecc_corrected",
                pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "ecc_uncorrected"}[error_type]
        return self.read(gpu, kind)

    def new_reasons(self, gpu: FakeGpu) -> int:
        if not self.event_reasons:  # a driver older than R535
            raise nvml_error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return self.read(gpu, "reasons")


def collect(collector: GpuCollector) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in collector.collect() for s in family.samples}


def new_collector() -> GpuCollector:
    return GpuCollector(CollectorSettings())


@pytest.mark.parametrize("event_reasons", [True, False], ids=["event-reasons", "throttle-reasons"])
def test_two_gpus_in_base_units_and_the_failing_one_left_out(monkeypatch, event_reasons):
    FakeNvml(monkeypatch, event_reasons=event_reasons)
    s = collect(new_collector())
    a100 = {"gpu": "0", "uuid": GPUS[0].uuid}
    rtx = {"gpu": "1", "uuid": GPUS[1].uuid}

    assert value(s, "gpu_nvml_available") == 1
    assert value(s, "gpu_count") == 3
    assert value(s, "gpu_info", **a100, name="NVIDIA A100-SXM4-80GB",
                 driver_version="550.54.15") == 1
    assert value(s, "gpu_utilization_ratio", **a100) == pytest.approx(0.87)
    assert value(s, "gpu_memory_utilization_ratio", **a100) == pytest.approx(0.41)
    assert value(s, "gpu_memory_used_bytes", **a100) == 60_000_000_000
    assert value(s, "gpu_memory_total_bytes", **a100) == 85_899_345_920
    assert value(s, "gpu_temperature_celsius", **a100) == 64
    assert value(s, "gpu_power_watts", **a100) == pytest.approx(312.456)
    assert value(s, "gpu_power_limit_watts", **a100) == pytest.approx(400)
    assert value(s, "gpu_energy_joules_total", **a100) == pytest.approx(9_876_543.21)
    assert value(s, "gpu_sm_clock_hertz", **a100) == pytest.approx(1.41e9)
    assert value(s, "gpu_memory_clock_hertz", **a100) == pytest.approx(1.593e9)
    assert value(s, "gpu_ecc_errors_total", **a100, type="corrected") == 3
    assert value(s, "gpu_ecc_errors_total", **a100, type="uncorrected") == 0
    assert value(s, "gpu_throttle_reason", **a100, reason="sw_power_cap") == 1
    assert value(s, "gpu_throttle_reason", **a100, reason="sw_thermal_slowdown") == 1
    assert value(s, "gpu_throttle_reason", **a100, reason="gpu_idle") == 0
    assert value(s, "gpu_throttle_reason", **rtx, reason="gpu_idle") == 1
    assert value(s, "gpu_throttle_reason", **rtx, reason="hw_slowdown") == 0

    # Not-supported fields are left out, not errors: no fan on the A100, no ECC on the RTX.
    assert value(s, "gpu_fan_speed_ratio", **a100) is None
    assert value(s, "gpu_fan_speed_ratio", **rtx) == pytest.approx(0.30)
    assert value(s, "gpu_ecc_errors_total", **rtx, type="corrected") is None
    assert value(s, "gpu_power_watts", **rtx) == pytest.approx(31.2)
    # The lost GPU is left out whole, the others are still served.
    assert not [key for key in s if ("gpu", "2") in key[1]]


def test_nvml_initialised_once_and_a_failing_gpu_logged_once(monkeypatch, caplog):
    nvml = FakeNvml(monkeypatch)
    collector = new_collector()
    with caplog.at_level(logging.WARNING, logger="exporter.collectors.gpu"):
        for _ in range(3):
            assert value(collect(collector), "gpu_count") == 3
    assert nvml.inits == 1
    lost = [r for r in caplog.records if "GPU 2" in r.getMessage()]
    assert len(lost) == 1
    assert "GPU is lost" in lost[0].getMessage()


def test_failed_init_is_not_retried(monkeypatch, caplog):
    nvml = FakeNvml(monkeypatch, init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    collector = new_collector()
    with caplog.at_level(logging.WARNING, logger="exporter.collectors.gpu"):
        scrapes = [collect(collector) for _ in range(3)]
    assert nvml.inits == 1
    for s in scrapes:
        assert s == {("gpu_nvml_available", frozenset()): 0}
    assert [r.getMessage() for r in caplog.records] == [
        "GPU metrics off: NVML unavailable (Driver Not Loaded), no NVIDIA driver on this host? "
        "gpu_nvml_available is 0; restart the exporter to try again"]


def has_nvidia_driver() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(has_nvidia_driver(), reason="this host has an NVIDIA driver")
def test_no_driver_here_exporter_serves_and_logs_once(redis_url, start_exporter):
    exporter = start_exporter(redis_url)
    for _ in range(3):
        s = exporter.samples()
        assert value(s, "gpu_nvml_available") == 0
        assert value(s, "agent_exporter_collector_success", collector="gpu") == 1
        assert value(s, "system_cpus") is not None  # everything else still served
    lines = [line for line in exporter.proc.log().splitlines() if "gpu" in line.lower()]
    assert len(lines) == 1
    assert "GPU metrics off: NVML unavailable (NVML Shared Library Not Found)" in lines[0]
