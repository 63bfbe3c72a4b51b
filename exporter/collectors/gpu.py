"""GPU collector (`gpu_`): NVIDIA GPUs through NVML (pynvml), read on each scrape.

NVML is initialised once, on the first scrape (under the collector deadline, so a wedged driver
cannot hold up start-up), and never retried after it fails: a host without an NVIDIA driver
exports `gpu_nvml_available 0`, logs why once, and the collector keeps succeeding. A reading a
GPU does not support (fan on a passively cooled card, ECC switched off, energy on old boards) is
left out; any other NVML error on a GPU drops that GPU from this scrape, logged once a minute,
and the other GPUs are still served. Units are converted to base units: MHz → Hz,
mW → W, mJ → J, percent → ratio.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from prometheus_client.core import Metric

from ..throttle import Throttled
from .registry import Built, CollectorSettings, by_exposed_name, counter, gauge, register

log = logging.getLogger(__name__)

GPU = ["gpu", "uuid"]
# Bits of nvmlClocksEventReasons / nvmlClocksThrottleReasons (stable across NVML versions).
THROTTLE_REASONS = (
    ("gpu_idle", 0x1),
    ("applications_clocks_setting", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
)
# The newer name first; drivers before R535 only have the older one.
REASON_CALLS = ("nvmlDeviceGetCurrentClocksEventReasons",
                "nvmlDeviceGetCurrentClocksThrottleReasons")
# (metric, pynvml function, constant argument names, factor to base units)
SCALARS = (
    ("gpu_temperature_celsius", "nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",), 1.0),
    ("gpu_power_watts", "nvmlDeviceGetPowerUsage", (), 1e-3),
    ("gpu_power_limit_watts", "nvmlDeviceGetEnforcedPowerLimit", (), 1e-3),
    ("gpu_energy_joules_total", "nvmlDeviceGetTotalEnergyConsumption", (), 1e-3),
    ("gpu_sm_clock_hertz", "nvmlDeviceGetClockInfo", ("NVML_CLOCK_SM",), 1e6),
    ("gpu_memory_clock_hertz", "nvmlDeviceGetClockInfo", ("NVML_CLOCK_MEM",), 1e6),
    ("gpu_fan_speed_ratio", "nvmlDeviceGetFanSpeed", (), 0.01),
)
ECC_TYPES = (("corrected", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
             ("uncorrected", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED"))

Sample = tuple[str, list[str], float]


def _str(value: str | bytes) -> str:
    """pynvml returns bytes before 11.5 and str since."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@register("gpu", True, "NVIDIA GPUs through NVML (pynvml)")
class GpuCollector:
    """`gpu_*` per GPU (labels gpu = index, uuid), plus `gpu_count` and `gpu_nvml_available`."""

    def __init__(self, settings: CollectorSettings) -> None:
        self._tried = False
        self._nvml: ModuleType | None = None  # pynvml once nvmlInit succeeded
        self._driver = ""
        self._complain = Throttled(log)

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        nvml = self._init()
        f["gpu_nvml_available"].add_metric([], 0 if nvml is None else 1)
        if nvml is None:
            return [f["gpu_nvml_available"]]
        count = nvml.nvmlDeviceGetCount()
        f["gpu_count"].add_metric([], count)
        for index in range(count):
            try:
                samples = self._read(nvml, index)
            except nvml.NVMLError as exc:
                self._complain(index, logging.WARNING, "GPU %d skipped on this scrape: NVML "
                               "error %s (logged once a minute)", index, exc)
                continue
            for name, labels, value in samples:
                f[name].add_metric(labels, value)
        return f.values()

    def _init(self) -> ModuleType | None:
        """pynvml after one nvmlInit, or None for good if NVML cannot be used here."""
        if self._tried:
            return self._nvml
        self._tried = True
        try:
            import pynvml
        except ImportError as exc:
            log.warning("GPU metrics off: pynvml is not installed (%s); gpu_nvml_available is 0",
                        exc)
            return None
        try:
            pynvml.nvmlInit()
            self._driver = _str(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as exc:
            log.warning("GPU metrics off: NVML unavailable (%s), no NVIDIA driver on this host? "
                        "gpu_nvml_available is 0; restart the exporter to try again", exc)
            return None
        self._nvml = pynvml
        log.info("NVML ready, NVIDIA driver %s", self._driver)
        return pynvml

    def _read(self, nvml: ModuleType, index: int) -> list[Sample]:
        """One GPU's samples; raises NVMLError (other than not-supported) to drop the GPU."""
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        gpu = [str(index), _str(nvml.nvmlDeviceGetUUID(handle))]

        def read(call: Any, *args: Any) -> Any:
            try:
                return call(handle, *args)
            except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
                return None

        out: list[Sample] = [("gpu_info", gpu + [_str(nvml.nvmlDeviceGetName(handle)),
                                                 self._driver], 1.0)]
        utilization = read(nvml.nvmlDeviceGetUtilizationRates)
        if utilization is not None:
            out.append(("gpu_utilization_ratio", gpu, utilization.gpu / 100))
            out.append(("gpu_memory_utilization_ratio", gpu, utilization.memory / 100))
        memory = read(nvml.nvmlDeviceGetMemoryInfo)
        if memory is not None:
            out.append(("gpu_memory_used_bytes", gpu, float(memory.used)))
            out.append(("gpu_memory_total_bytes", gpu, float(memory.total)))
        for name, function, constants, factor in SCALARS:
            value = read(getattr(nvml, function), *(getattr(nvml, c) for c in constants))
            if value is not None:
                out.append((name, gpu, value * factor))
        for kind, constant in ECC_TYPES:
            errors = read(nvml.nvmlDeviceGetTotalEccErrors, getattr(nvml, constant),
                          nvml.NVML_VOLATILE_ECC)
            if errors is not None:
                out.append(("gpu_ecc_errors_total", gpu + [kind], float(errors)))
        reasons = None
        for function in REASON_CALLS:
            call = getattr(nvml, function, None)
            if call is not None and (reasons := read(call)) is not None:
                break
        if reasons is not None:
            out += [("gpu_throttle_reason", gpu + [reason], 1.0 if reasons & bit else 0.0)
                    for reason, bit in THROTTLE_REASONS]
        return out

    @staticmethod
    def _families() -> dict[str, Built]:
        families: list[Built] = [
            gauge("gpu_nvml_available", "1 if NVML initialised, 0 if GPU metrics are off "
                                        "(no driver or library; the log says why)."),
            gauge("gpu_count", "GPUs NVML reports, including any skipped on this scrape."),
            gauge("gpu_info", "Always 1; name and driver_version describe the GPU.",
                  GPU + ["name", "driver_version"]),
            gauge("gpu_utilization_ratio", "Fraction of the last sample period a kernel ran.", GPU),
            gauge("gpu_memory_utilization_ratio",
                  "Fraction of the last sample period device memory was read or written.", GPU),
            gauge("gpu_memory_used_bytes", "Device memory allocated.", GPU),
            gauge("gpu_memory_total_bytes", "Device memory installed.", GPU),
            gauge("gpu_temperature_celsius", "Core temperature.", GPU),
            gauge("gpu_power_watts", "Power draw.", GPU),
            gauge("gpu_power_limit_watts", "Power limit the driver enforces.", GPU),
            counter("gpu_energy_joules_total", "Energy consumed since the driver was loaded.", GPU),
            gauge("gpu_sm_clock_hertz", "Current SM clock.", GPU),
            gauge("gpu_memory_clock_hertz", "Current memory clock.", GPU),
            gauge("gpu_fan_speed_ratio", "Fan speed as a fraction of its maximum.", GPU),
            counter("gpu_ecc_errors_total",
                    "ECC memory errors since the driver was loaded (volatile count), "
                    "by type corrected / uncorrected.", GPU + ["type"]),
            gauge("gpu_throttle_reason",
                  "1 while the reason holds the GPU's clocks down, else 0.", GPU + ["reason"]),
        ]
        return by_exposed_name(families)
