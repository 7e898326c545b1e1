"""Clocks and memory gauges that mean the same thing on CPU and CUDA."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

try:
    import resource
except ImportError:  # Windows
    resource = None

if TYPE_CHECKING:
    from ryot.train.results import ArmResult

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


# --- machine stalls -------------------------------------------------------------------------

_PROC_STAT = Path("/proc/stat")


def _cpu_seconds() -> tuple[float, float] | None:
    """Machine-wide CPU seconds since boot from /proc/stat, summed over CPUs: (busy, steal).
    Busy is user + nice + system + irq + softirq: every process's work, ours included."""
    try:
        with _PROC_STAT.open(encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


@dataclass(frozen=True)
class Mark:
    """Where a measurement of stalls starts from (see StallMonitor.mark)."""

    wall: float  # perf_counter
    own_cpu: float  # the arm's CPU seconds: this process's threads and its process tree
    queued: float | None  # the training threads' run-queue wait, summed
    machine: tuple[float, float] | None  # (busy, steal) CPU seconds of the whole machine


@dataclass(frozen=True)
class Stall:
    """What the machine took from one stretch of the clock, signal by signal."""

    seconds: float  # taken off: the largest signal, never more than the stretch itself
    stopped: float  # the process was stopped outright (a SIGCONT ended it): exact
    contended: float  # neighbours' CPU or hypervisor steal: a fair-share estimate


class _ContinueSignals:
    """Evidence the stack cannot produce that the process was stopped: the SIGCONT that ended
    the stop, written by the C-level signal handler to a pipe (signal.set_wakeup_fd) the
    moment the process runs again, whatever thread holds the GIL. A heartbeat that wakes late
    only because a C call held the GIL sees no SIGCONT: that wait is the stack's own.

    Needs the main thread (signal.set_wakeup_fd); elsewhere, and where another handler takes
    the wakeup fd over, no stop is ever credited: stalls are under-counted, never invented.
    """

    def __init__(self):
        self.active = False
        self._read = self._write = -1
        self._old_handler = self._old_fd = None

    def start(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        if not main or not hasattr(signal, "SIGCONT"):
            return
        try:
            self._read, self._write = os.pipe()
            os.set_blocking(self._read, False)
            os.set_blocking(self._write, False)
            self._old_handler = signal.signal(signal.SIGCONT, _ignore_signal)
            self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        except (ValueError, OSError):
            self.stop()
            return
        self.active = True

    def seen(self) -> bool:
        """Whether a SIGCONT arrived since the last call."""
        if not self.active:
            return False
        found = False
        try:
            while chunk := os.read(self._read, 512):
                found = found or signal.SIGCONT in chunk
        except (BlockingIOError, OSError):
            pass
        return found

    def stop(self) -> None:
        """Put back whatever start() replaced, also after a start that failed half way."""
        try:
            if self._old_fd is not None:
                signal.set_wakeup_fd(self._old_fd)
            if self._old_handler is not None:
                signal.signal(signal.SIGCONT, self._old_handler)
        except (ValueError, OSError, TypeError):
            pass
        self._old_handler = self._old_fd = None
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1
        self.active = False


def _ignore_signal(signum, frame) -> None:
    """SIGCONT's Python-level handler: the C-level handler's write to the wakeup fd is all
    that is needed (the process continues whatever the handler)."""


class StallMonitor:
    """Wall time during which the machine, not the stack, held this process back: a stall.

    Three signals, none of which the stack can produce, and the largest one counts (they can
    see the same stall, so they are not added):

    - **stopped**: a heartbeat thread wakes every `tick_s`; a beat `min_gap_s` or more late
      while the whole process used less than `max_cpu_share` of the gap in CPU time, and which
      a SIGCONT ended, was a stop (SIGSTOP, a debugger, a job-control pause). A late beat with
      no SIGCONT is the stack's own (a C call that blocks holding the GIL);
    - **stolen**: the hypervisor's steal time (/proc/stat), per CPU;
    - **crowded out**: other processes' CPU time on this machine (/proc/stat's busy time less
      the arm's own: this process and every process it started), per CPU, once it reaches 5%
      of the interval, but never more than the training threads (those that existed before
      the stack was built) spent waiting in the run queue (/proc/self/task/*/schedstat), per
      training thread. Both must be high: a neighbour that runs on a core this stack leaves
      idle takes nothing from it, and the stack's own threads and processes competing with
      the training threads is its own cost.

    What the stack does itself never looks like any of these: while it sleeps, waits on I/O, a
    lock or the GIL, nothing else runs and no SIGCONT comes; while it computes, compiles or
    collects garbage, in any thread or child process, the CPU is the arm's. Contention is
    under-counted (the OMP team spin-waits at its barriers, so a preempted thread holds up the
    others), never over-counted: a run that needed much of that estimate is re-run, never
    judged (ryot.judge.contamination).
    """

    def __init__(self, tick_s: float = 0.01, min_gap_s: float = 0.05, max_cpu_share: float = 0.1,
                 min_neighbour_share: float = 0.05, threads: int | None = None):  # fmt: skip
        self.tick_s, self.min_gap_s, self.max_cpu_share = tick_s, min_gap_s, max_cpu_share
        self.min_neighbour_share = min_neighbour_share
        self.threads = max(1, threads or torch.get_num_threads())
        self.cpus = os.cpu_count() or 1
        self._lock = threading.Lock()
        self._stalls: list[tuple[float, float]] = []  # (start, end) on perf_counter's clock
        self._gaps: list[tuple[float, float]] = []  # late beats no SIGCONT has confirmed yet
        self._continued = _ContinueSignals()
        self._last_wall = time.perf_counter()
        self._last_cpu = time.process_time()
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="ryot-stall-monitor")
        self._training: set[int] | None = None  # native ids, looked up at the first mark
        self._siblings: list[int] | None = None  # a torchrun job's other ranks on this machine

    def __enter__(self) -> StallMonitor:
        self._continued.start()
        self._last_wall, self._last_cpu = time.perf_counter(), time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_event.set()
        self._thread.join()
        self._continued.stop()

    def _beat(self) -> None:
        while not self._stop_event.wait(self.tick_s):
            self._settle()

    def _settle(self) -> None:
        """Close the interval since the last beat: a candidate stop if it was long and CPU-idle,
        a stop once a SIGCONT confirms it (the signal's handler may run a moment after the
        heartbeat, on another thread: a candidate waits CONFIRM_S for it)."""
        with self._lock:
            wall, cpu = time.perf_counter(), time.process_time()
            gap = wall - self._last_wall
            if gap >= self.min_gap_s and (cpu - self._last_cpu) < self.max_cpu_share * gap:
                self._gaps.append((self._last_wall, wall))
            if self._continued.seen():
                self._stalls.extend(self._gaps)
                self._gaps.clear()
            self._gaps = [g for g in self._gaps if wall - g[1] <= CONFIRM_S]
            self._last_wall, self._last_cpu = wall, cpu

    def _confirm_pending(self) -> None:
        """Before a reading: give a late beat that just ended the time its SIGCONT needs."""
        deadline = time.perf_counter() + CONFIRM_S
        while True:
            self._settle()
            with self._lock:
                pending = bool(self._gaps) and self._continued.active
            if not pending or time.perf_counter() >= deadline:
                return
            time.sleep(0.002)

    def mark(self) -> Mark:
        """A point to measure stalls from."""
        if self._training is None:
            # The training threads are those that exist before the stack is built (the first
            # mark), less Ryot's own helpers (this heartbeat, the heap sampler), which wait in
            # the run queue whenever they wake on a busy machine, even while the stack sleeps.
            # Threads the stack starts later are its helpers: their waits are its own.
            helpers = {t.native_id for t in threading.enumerate() if t.name.startswith("ryot-")}
            self._training = set(thread_ids()) - helpers
            self._siblings = sibling_ranks()
        queued = run_queue_wait_s(only=self._training)
        # The arm's own CPU: this process, every process it started (the stack's workers and
        # compilers), and a torchrun job's sibling ranks on this machine, which are the job's
        # work and no neighbour (counted as one, they took ~10 s off a 2-rank run's clock).
        own = (
            time.process_time()
            + reaped_children_cpu_s()
            + sum(process_cpu_s(pid) for pid in descendants(os.getpid()))
            + sum(process_cpu_s(pid) for pid in self._siblings or ())
        )
        return Mark(time.perf_counter(), own, queued, _cpu_seconds())

    def stalled_since(self, mark: Mark) -> Stall:
        """What the machine took between `mark` and now (at most the time elapsed)."""
        self._confirm_pending()  # a stop that just ended: its SIGCONT may be a moment behind
        now = self.mark()
        elapsed = now.wall - mark.wall
        with self._lock:
            held = sum(max(0.0, min(b, now.wall) - max(a, mark.wall)) for a, b in self._stalls)
        stolen = crowded = 0.0
        if mark.machine is not None and now.machine is not None:
            busy = now.machine[0] - mark.machine[0]
            stolen = (now.machine[1] - mark.machine[1]) / self.cpus
            others = max(0.0, busy - (now.own_cpu - mark.own_cpu))
            # A floor: /proc/stat counts in 10 ms ticks and a quiet machine has daemons, so a
            # neighbour counts once it takes 5% of the interval's CPU or more.
            if mark.queued is not None and now.queued is not None:
                if others / self.cpus >= self.min_neighbour_share * elapsed:
                    waited = max(0.0, now.queued - mark.queued) / self.threads
                    crowded = min(others / self.cpus, waited)
        taken = min(elapsed, max(held, stolen, crowded))
        return Stall(taken, min(taken, held), min(taken, max(stolen, crowded)))


CONFIRM_S = 0.05


def thread_ids() -> list[int]:
    """This process's threads, by native id (/proc/self/task)."""
    try:
        return [int(t.name) for t in Path("/proc/self/task").iterdir() if t.name.isdigit()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (its children, theirs, ...), from
    /proc/PID/task/*/children; empty where the kernel does not list children."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = (task / "children").read_text(encoding="ascii").split()
            except OSError:
                continue
            for kid in kids:
                if kid.isdigit() and int(kid) not in found:
                    found.append(int(kid))
                    frontier.append(int(kid))
    return found


def reaped_children_cpu_s() -> float:
    """CPU seconds of the child processes that have ended and been waited for (and of theirs)."""
    t = os.times()
    return t.children_user + t.children_system


def sibling_ranks() -> list[int]:
    """The other ranks of this torchrun job on this machine: the other children of this
    process's parent (the torchrun agent). None outside a multi-rank job."""
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= 1:
        return []
    me, parent = os.getpid(), os.getppid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fields = (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of process `pid` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError, UnicodeDecodeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_wait_s(only: set[int] | None = None) -> float | None:
    """Seconds this process's threads (those in `only`, by native thread id, if given) spent
    runnable but waiting for a CPU, summed (/proc/self/task/*/schedstat). Reported per run;
    the stall monitor uses it only as a cap on what other processes can have taken."""
    total = 0
    try:
        for task in Path("/proc/self/task").iterdir():
            if not task.name.isdigit() or (only is not None and int(task.name) not in only):
                continue
            try:
                total += int((task / "schedstat").read_text(encoding="ascii").split()[1])
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
    except OSError:
        return None
    return total / 1e9


def involuntary_switches() -> int | None:
    """Times this process was preempted (getrusage ru_nivcsw), reported beside the stalls."""
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


# --- one arm's run --------------------------------------------------------------------------


class RunMeter:
    """The machine-side bookkeeping of one arm's run, in one place: its peak memory, its
    stalls, its run-queue wait and its preemptions, so the trainer's loop reads as training.

    Entered before the stack is built: the heap sampler and the stall heartbeat start first
    (their threads are left out of the run-queue wait the first mark looks up), and the run's
    first mark (`start`) is where setup's stall and the run's queue wait are measured from.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.stalls = StallMonitor()
        self.memory = PeakMemory(device)
        self._switches: int | None = None
        self.start: Mark | None = None

    def __enter__(self) -> RunMeter:
        # The intra-op thread pool starts on the first parallel op: start it now, so its
        # threads are training threads (see StallMonitor.mark) and not the stack's helpers.
        torch.ones(1 << 20).sum()
        self.stalls.__enter__()
        self.memory.start()
        self._switches = involuntary_switches()
        self.start = self.stalls.mark()
        return self

    def __exit__(self, *exc) -> None:
        self.stalls.__exit__(*exc)

    def span(self, since: Mark | None = None) -> Span:
        """A stretch of the arm's clock: `with meter.span() as s: ...`, then s.took and s.stall
        (its stall counted from `since`, or from just before it)."""
        return Span(self, since)

    def finish(self, result: ArmResult) -> None:
        """Fill `result`'s run-queue wait, preemptions and memory; stops the heap sampler."""
        ended = self.stalls.mark()
        if self.start.queued is not None and ended.queued is not None:
            result.run_queue_wait_s = ended.queued - self.start.queued
        if self._switches is not None:
            result.involuntary_switches = involuntary_switches() - self._switches
        result.peak_rss_mb = self.memory.rss_peak_mib()
        result.peak_memory_mb = self.memory.peak_mib()
        result.memory_method = self.memory.method


class Span:
    """The time one block took on the arm's clock (a synchronizing clock: see now), and how much
    of it the machine stalled: never more than the time itself, so the stack's clock (time less
    stalls) never runs backwards. `stopped` and `contended` are the stall's signals (Stall)."""

    def __init__(self, meter: RunMeter, since: Mark | None):
        self.meter = meter
        self.since = since
        self.began = self.took = self.stall = self.stopped = self.contended = 0.0

    def __enter__(self) -> Span:
        if self.since is None:
            self.since = self.meter.stalls.mark()
        self.began = now(self.meter.device)
        return self

    def __exit__(self, *exc) -> None:
        self.took = now(self.meter.device) - self.began
        stall = self.meter.stalls.stalled_since(self.since)
        self.stall = min(self.took, stall.seconds)
        self.stopped = min(self.stall, stall.stopped)
        self.contended = min(self.stall, stall.contended)
