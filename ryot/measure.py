"""Clocks and memory gauges that mean the same thing on CPU and CUDA."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

try:
    import resource
except ImportError:  # Windows
    resource = None

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a clock reading covers the work it claims to."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    synchronize(device)
    return time.perf_counter()


def _status_kib(field: str) -> int | None:
    try:
        for line in _PROC_STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """Peak memory of one arm, in MiB above the level at start().

    CUDA: max_memory_allocated. CPU on Linux: the process's high-water RSS (VmHWM), reset at
    start() through /proc/self/clear_refs so that a second arm in the same process is measured
    on its own. Elsewhere: ru_maxrss, exact only for the first arm of a process (`method` says).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.start_mib = 0.0
        self.method = ""

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mib = torch.cuda.memory_allocated(self.device) / 2**20
            self.method = "cuda max_memory_allocated"
            return
        rss = _status_kib("VmRSS")
        try:
            _CLEAR_REFS.write_text("5", encoding="ascii")  # resets VmHWM to the current RSS
            reset = True
        except OSError:
            reset = False
        if rss is not None and reset:
            self.start_mib = rss / 1024
            self.method = "peak RSS (VmHWM) above arm start"
        else:
            self.start_mib = self._ru_maxrss_mib()
            self.method = "ru_maxrss above arm start (first arm of a process only)"

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.start_mib
        hwm = _status_kib("VmHWM") if self.method.startswith("peak RSS") else None
        peak = hwm / 1024 if hwm is not None else self._ru_maxrss_mib()
        return max(0.0, peak - self.start_mib)

    @staticmethod
    def _ru_maxrss_mib() -> float:
        if resource is None:
            return 0.0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
