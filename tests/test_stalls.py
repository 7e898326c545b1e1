"""Machine stalls come off the clock; whatever the stack does itself stays on it.

Real processes and real signals: a trainer whose step sleeps is charged every second of it; one
stopped with SIGSTOP while it computes has exactly the stopped time taken off (ryot.train.stalls's
StallMonitor). The tolerances are the detector's own resolution (a 10 ms heartbeat, a 50 ms
gap), with room for a busy machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import torch

from ryot.train.trainer import Trainer
from tests import sabotage
from tests.conftest import ROOT, default_sigint

CPU = torch.device("cpu")

CHILD = """
import json, sys
from ryot.config import load_config
from ryot.train.trainer import Trainer
from tests import sabotage
config = load_config("configs/smoke.yaml")
stack = [sabotage.Spins("cpu", step=2, seconds=float(sys.argv[1]))]
r = Trainer(config, arm="optimized", stack=stack, device="cpu").run()
print(json.dumps({"step_times": r.step_times, "step_stalls": r.step_stalls,
                  "setup_stall_s": r.setup_stall_s, "clock_s": r.clock_s,
                  "wall_time_s": r.wall_time_s, "stopped_s": r.stopped_s,
                  "contended_s": r.contended_s, "close_stall_s": r.close_stall_s}), flush=True)
"""


def test_a_stack_that_sleeps_is_charged_every_second(smoke_config):
    stack = [sabotage.Sleeps(CPU, step=2, seconds=6.0)]
    r = Trainer(smoke_config, arm="optimized", stack=stack, device=CPU).run()
    # Every second of the sleep, less what a busy machine's run queue held the step's own work
    # back around it: 15 ms measured on the slowest 2-core AMD EPYC, 73 ms on an AVX512 one
    # beside the rest of the suite (the other tests in this file allow 0.2 s alike).
    charged = 6.0 - 0.2
    assert r.step_clock[2] >= charged
    assert r.clock_s >= charged
    assert r.step_stalls[2] < 0.5  # sleeping is the stack's own time, never a stall
    assert r.curve[-1].clock_s >= charged  # the judge's clock charges it too


def test_a_process_stopped_mid_step_has_the_stopped_time_taken_off():
    spin, stopped = 1.5, 1.0
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spin)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        preexec_fn=default_sigint,
    )
    try:
        assert child.stdout.readline().strip() == "spinning"
        time.sleep(0.3)
        child.send_signal(signal.SIGSTOP)
        time.sleep(stopped)
        child.send_signal(signal.SIGCONT)
        out, _ = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    r = json.loads(out.strip().splitlines()[-1])
    stall = r["step_stalls"][2]
    # The stop itself is measured exactly (the heartbeat's gap, confirmed by the SIGCONT);
    # on a busy machine contention may add its own share to the step's stall, never less.
    assert stopped - 0.2 <= r["stopped_s"] <= stopped + 0.2, r
    assert stall >= r["stopped_s"] - 1e-9, r
    assert stall <= stopped + 0.5 or r["contended_s"] > 0, r
    assert r["step_times"][2] >= spin + stopped - 0.2  # the wall clock saw both
    assert r["step_times"][2] - stall >= spin - 0.2  # the stack's own time stays on the clock
    stalled = r["setup_stall_s"] + sum(r["step_stalls"]) + r["close_stall_s"]
    assert abs(r["wall_time_s"] - r["clock_s"] - stalled) < 1e-9


HOG = """
import sys, time
end = time.perf_counter() + float(sys.argv[1])
while time.perf_counter() < end:
    pass
"""


def test_time_taken_by_neighbours_is_taken_off_and_the_stack_keeps_its_own():
    """A one-thread stack spins 1.5 s of CPU while two neighbours hog both cores: it gets about
    2/3 of a core, so its step takes about 2.25 s of wall time, of which about 0.75 s is the
    neighbours'. What is left on its clock is its own 1.5 s of CPU, give or take the estimate's
    fair-share assumption."""
    spin = 1.5
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spin)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, encoding="utf-8",
    )  # fmt: skip
    hogs = []
    try:
        assert child.stdout.readline().strip() == "spinning"
        hogs = [subprocess.Popen([sys.executable, "-c", HOG, "5"]) for _ in range(2)]
        out, _ = child.communicate(timeout=120)
    finally:
        for p in [child, *hogs]:
            p.kill()
            p.wait()
    r = json.loads(out.strip().splitlines()[-1])
    wall, stall = r["step_times"][2], r["step_stalls"][2]
    assert wall > spin * 1.2, r  # the neighbours really did take time
    assert stall > 0.2 * (wall - spin), r  # and most of what they took is seen
    assert spin * 0.8 <= wall - stall <= spin * 1.35, r  # the stack's own time stays on it
