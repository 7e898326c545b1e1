"""Machine stalls: wall time during which the machine, not the stack, held this process back
(StallMonitor), and the /proc readings it and the run meter take."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

try:
    import resource
except ImportError:  # Windows
    resource = None

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
