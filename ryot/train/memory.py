"""Memory gauges that mean the same thing on CPU and CUDA: the peak memory of one arm."""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path

import torch

try:
    import resource
except ImportError:  # Windows
    resource = None

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _PROC_STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def _glibc_mallinfo2():
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2  # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


class _LiveHeapSampler(threading.Thread):
    """Samples the bytes malloc has handed out and not taken back (all arenas plus mmapped
    blocks), every 10 ms, and keeps the maximum: a training step lasts far longer than that
    (0.3-0.8 s for the seed model), and mallinfo2 costs a few microseconds.
    """

    def __init__(self, mallinfo2, interval_s: float = 0.01):
        super().__init__(daemon=True, name="ryot-heap-sampler")
        self.mallinfo2 = mallinfo2
        self.interval_s = interval_s
        self.peak = self.start_bytes = self.live()
        self._stop_event = threading.Event()

    def live(self) -> int:
        info = self.mallinfo2()
        return info.uordblks + info.hblkhd

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.peak = max(self.peak, self.live())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self.live())
        return self.peak - self.start_bytes


class PeakMemory:
    """Peak memory of one arm, in MiB above the level at start().

    CUDA: max_memory_allocated (live tensor bytes). CPU with glibc: the peak of live heap bytes
    (mallinfo2, sampled every 10 ms), the CPU analogue of max_memory_allocated. Peak RSS is
    also recorded (`rss_peak_mib`), but it counts what the allocator keeps after tensors are
    freed, which grows with every new tensor shape, so it is reported, not judged. Without
    glibc the RSS peak is all there is, and `method` says so.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.start_mib = 0.0
        self.rss_start_mib: float | None = None
        self.method = ""
        self._sampler: _LiveHeapSampler | None = None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mib = torch.cuda.memory_allocated(self.device) / 2**20
            self.method = "cuda max_memory_allocated"
            return
        rss = _status_kib("VmRSS")
        try:
            _CLEAR_REFS.write_text("5", encoding="ascii")  # resets VmHWM to the current RSS
            self.rss_start_mib = rss / 1024 if rss is not None else None
        except OSError:
            self.rss_start_mib = None
        mallinfo2 = _glibc_mallinfo2()
        if mallinfo2 is not None:
            self._sampler = _LiveHeapSampler(mallinfo2)
            self._sampler.start()
            self.method = "peak live heap bytes (glibc mallinfo2, sampled every 10 ms)"
        elif self.rss_start_mib is not None:
            self.method = "peak RSS (VmHWM) above arm start"
        else:
            self.start_mib = self._ru_maxrss_mib()
            self.method = "ru_maxrss above arm start (first arm of a process only)"

    def rss_peak_mib(self) -> float | None:
        hwm = _status_kib("VmHWM")
        if self.rss_start_mib is None or hwm is None:
            return None
        return max(0.0, hwm / 1024 - self.rss_start_mib)

    def peak_mib(self) -> float:
        """Stops sampling: call once, at the end of the arm."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.start_mib
        if self._sampler is not None:
            return max(0.0, self._sampler.stop() / 2**20)
        if self.rss_start_mib is not None:
            return self.rss_peak_mib() or 0.0
        return max(0.0, self._ru_maxrss_mib() - self.start_mib)

    @staticmethod
    def _ru_maxrss_mib() -> float:
        if resource is None:
            return 0.0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
