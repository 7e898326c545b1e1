"""Stacks whose work once ran off the clock, loaded in process by tests/test_clock.py."""

from __future__ import annotations

import ctypes
import time

from ryot.optim.base import Optimization

SLEEP_S = 2.0


class _Enabled(Optimization):
    @property
    def enabled(self) -> bool:
        return True


class SleepsInClose(_Enabled):
    """Does SLEEP_S of its work in close(), after the last step (once: close is idempotent)."""

    name = "sleeps_in_close"

    def __init__(self, device):
        super().__init__(device)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            time.sleep(SLEEP_S)


class EvalModeHook(_Enabled):
    """A forward hook on the model that counts the calls it sees in eval mode, and raises or
    sleeps there: an EMA swap, a lazy prepack, a deferred update would run there."""

    name = "eval_mode_hook"

    def __init__(self, device, raises: bool = False, sleep_s: float = 0.0):
        super().__init__(device)
        self.raises, self.sleep_s = raises, sleep_s
        self.eval_calls = 0

    def prepare_model(self, model):
        model.register_forward_hook(self._hook)
        return model

    def _hook(self, module, args, output):
        if module.training:
            return None
        self.eval_calls += 1
        if self.raises:
            raise RuntimeError("this stack's hook is not meant to run in eval mode")
        time.sleep(self.sleep_s)
        return None


class HoldsTheGil(_Enabled):
    """At one step, blocks in a C call that keeps the GIL (ctypes.PyDLL does not release it):
    the heartbeat cannot run, as in a stop, but the wait is the stack's own."""

    name = "holds_the_gil"

    def __init__(self, device, step: int, seconds: float):
        super().__init__(device)
        self.step, self.seconds = step, seconds

    def transform_batch(self, step, inputs, targets):
        if step == self.step:
            ctypes.PyDLL(None).usleep(int(self.seconds * 1e6))
        return inputs, targets
