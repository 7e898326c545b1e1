"""Sabotaged optimization stacks: each must turn the verdict away from GO.

Used in-process by tests/test_sabotage.py and, by name (`--stack tests.sabotage:NAME`), by
worker subprocesses in tests/test_cli.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ryot.optim import build_stack
from ryot.optim.base import Optimization
from ryot.optim.kernel import KernelOptimizer


class NoOpKernel(KernelOptimizer):
    """Claims its level, changes nothing."""

    def prepare_model(self, model):
        self.evidence.applied.append("(claims SDPA, fused AdamW, bf16)")
        return model

    def optimizer_options(self):
        return {}

    def autocast(self):
        return contextlib.nullcontext()


class Slowdown(Optimization):
    """Makes every step `factor` times slower than its own work: the slowdown scales with the
    machine's own speed, so the sabotage is as visible on a busy machine as on a quiet one.

    A step's work runs from its batch (transform_batch) to the end of its optimizer step; a
    hook after the optimizer step then sleeps (factor - 1) times that, inside the same step.
    With `whole_run`, setup is slowed alike: from the stack's construction to the optimizer
    being built, slept before the optimizer is built. A machine slow throughout, setup
    included, so its effect on end-to-end time does not depend on how setup compares with the
    steps. `slept` keeps every sleep, so tests can check the factor.

    The work is measured in this process's CPU seconds, not wall seconds: on a busy machine the
    wall time also holds the time other processes took, which the clock takes off as
    contention (ryot.train.stalls), so a sleep scaled by it would charge the arm for its
    neighbours too (a 2x slowdown read as 3.9x beside a busy test suite)."""

    name = "slowdown"

    def __init__(self, device, factor: float, whole_run: bool = False):
        self.factor = factor
        self.whole_run = whole_run
        self._built = time.process_time()
        self._began: float | None = None
        self._hook = None
        self.slept: list[float] = []
        super().__init__(device)

    @property
    def enabled(self) -> bool:
        return True

    def _sleep(self, work: float) -> None:
        self.slept.append((self.factor - 1) * work)
        time.sleep(self.slept[-1])

    def optimizer_options(self):
        if self.whole_run:
            self._sleep(time.process_time() - self._built)
        return {}

    def transform_batch(self, step, inputs, targets):
        if self._hook is None:
            # Process-wide, so it is removed in close(): a later arm must not inherit it.
            self._hook = register_optimizer_step_post_hook(self._after_step)
        if self._began is None:
            self._began = time.process_time()  # the first micro-batch of this step
        return inputs, targets

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self._began is not None:
            self._sleep(time.process_time() - self._began)
            self._began = None

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


class ConstantTargets(Optimization):
    """Trains every position to predict token 0: fast to run, ruinous for the loss."""

    name = "constant_targets"

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        return inputs, torch.zeros_like(targets)


class NaNAfter(Optimization):
    """Poisons the logits from a given step on."""

    name = "nan_after"

    def __init__(self, device, step: int):
        self.step = step
        self.current = 0
        super().__init__(device)

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        self.current = step
        return inputs, targets

    def prepare_model(self, model):
        model.lm_head.register_forward_hook(
            lambda module, args, out: out * float("nan") if self.current >= self.step else out
        )
        return model


def _optimized_only(extra):
    def factory(config, arm, device):
        stack = build_stack(config, arm, device)
        return stack + extra(device) if arm == "optimized" else stack

    return factory


def noop_kernel_stack(config, arm, device):
    stack = build_stack(config, arm, device)
    if arm != "optimized":
        return stack
    level = config.optimizations.kernel_optimizer.level
    return [NoOpKernel(device, level) if o.name == "kernel" else o for o in stack]


slowdown_stack = _optimized_only(lambda device: [Slowdown(device, 10.0, whole_run=True)])
constant_targets_stack = _optimized_only(lambda device: [ConstantTargets(device)])
nan_stack = _optimized_only(lambda device: [NaNAfter(device, 4)])


def aa_stack(config, arm, device):
    """A/A: the 'optimized' arm is the baseline."""
    return []


class HoldsMemory(Optimization):
    """Keeps a large buffer alive for the whole arm."""

    name = "holds_memory"

    def __init__(self, device, mib: int):
        self.mib = mib
        super().__init__(device)

    @property
    def enabled(self) -> bool:
        return True

    def prepare_model(self, model):
        self.buffer = torch.ones(self.mib * 2**18)  # float32: 4 bytes each
        return model


class PrintsEmoji(Optimization):
    """Prints a symbol straight to stdout, bypassing the encoding-safe console."""

    name = "prints_emoji"

    @property
    def enabled(self) -> bool:
        return True

    def prepare_model(self, model):
        print("\u2705 optimized")
        return model


# A real speedup of known size at zero loss cost: the judge's power. The baseline arm is slowed
# down (whole run, setup included) by 1 / (1 - KNOWN_SPEEDUP); the optimized arm trains the same
# model with the same math, so it is exactly that much faster and learns exactly the same.
KNOWN_SPEEDUP = 0.5


class Control(Optimization):
    """Enabled, changes nothing: the optimized arm of `known_speedup_stack`, whose speedup is
    the baseline's injected slowdown."""

    name = "control"

    @property
    def enabled(self) -> bool:
        return True

    def prepare_model(self, model):
        self.evidence.applied.append("nothing: the baseline arm carries the slowdown")
        return model


def known_speedup_stack(config, arm, device):
    if arm == "baseline":
        return [Slowdown(device, 1.0 / (1.0 - KNOWN_SPEEDUP), whole_run=True)]
    return [Control(device)]


def noisy_stack(config, arm, device):
    """The real stack slowed 20x, setup included: the A/A run's stack in a job whose machine is
    too noisy to measure on. The runner gives it to the A/A run alone (test_sabotage's
    NoisyAARunner): a factory cannot tell that run from the warm-up or a re-run of pair 0, all
    baselines of the same seed."""
    return [*build_stack(config, arm, device), Slowdown(device, 20.0, whole_run=True)]


memory_stack = _optimized_only(lambda device: [HoldsMemory(device, 300)])
emoji_stack = _optimized_only(lambda device: [PrintsEmoji(device)])


# Shortcuts that buy speed by learning less. Each is stacked on the real optimized arm; none is
# an optimization, and the judge must never call one GO.


class HalfBatch(Optimization):
    """Feeds half the samples of every step: fewer samples per step."""

    name = "half_batch"

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        half = max(1, inputs.shape[0] // 2)
        return inputs[:half], targets[:half]


class FreezeHalf(Optimization):
    """Freezes the token embedding and the first half of the blocks: frozen parameters."""

    name = "freeze_half"

    @property
    def enabled(self) -> bool:
        return True

    def prepare_model(self, model):
        inner = getattr(model, "_orig_mod", model)
        frozen = [inner.token_embedding, *inner.blocks[: len(inner.blocks) // 2]]
        for module in frozen:
            module.requires_grad_(False)
        return model


class ShortContext(Optimization):
    """Trains on the first quarter of every sequence only: context that never reaches full
    length (evaluation is still at full length)."""

    name = "short_context"

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        length = max(1, inputs.shape[1] // 4)
        return inputs[:, :length], targets[:, :length]


class StopsLearning(Optimization):
    """From half the steps on, feeds one token of one sample per step: the run stops learning
    halfway, and every later step is nearly free."""

    name = "stops_learning"

    def __init__(self, device, total_steps: int):
        self.halfway = total_steps // 2
        super().__init__(device)

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        if step >= self.halfway:
            return inputs[:1, :1], targets[:1, :1]
        return inputs, targets


def stops_learning_stack(config, arm, device):
    stack = build_stack(config, arm, device)
    return stack + [StopsLearning(device, config.total_steps)] if arm == "optimized" else stack


half_batch_stack = _optimized_only(lambda device: [HalfBatch(device)])
freeze_half_stack = _optimized_only(lambda device: [FreezeHalf(device)])
short_context_stack = _optimized_only(lambda device: [ShortContext(device)])


# Faults for the reliability tests: a worker that hangs, dies, or cannot start training.


class Hangs(Optimization):
    """Sleeps in its first step, far longer than any test waits."""

    name = "hangs"

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        time.sleep(600)
        return inputs, targets


class KillsItsProcess(Optimization):
    """SIGKILLs its own worker in the first step: a worker that dies without a word."""

    name = "kills_its_process"

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        os.kill(os.getpid(), signal.SIGKILL)
        return inputs, targets


class FailsToPrepare(Optimization):
    """Builds fine (the parent's check passes) and raises once training starts."""

    name = "fails_to_prepare"

    @property
    def enabled(self) -> bool:
        return True

    def prepare_model(self, model):
        raise RuntimeError("sabotage: cannot prepare the model")


class _AtOneStep(Optimization):
    """Does `act()` once, inside the step `step` (0-based), for `seconds`."""

    def __init__(self, device, step: int, seconds: float):
        self.step, self.seconds = step, seconds
        super().__init__(device)

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        if step == self.step:
            self.act()
        return inputs, targets

    def act(self) -> None:
        raise NotImplementedError


class Sleeps(_AtOneStep):
    """Sleeps `seconds` inside one step: the stack's own time, which the clock must charge."""

    name = "sleeps"

    def act(self) -> None:
        time.sleep(self.seconds)


class Spins(_AtOneStep):
    """Busy-computes `seconds` of CPU time in Python inside one step (the GIL held, switching as
    usual), saying so on stdout first: a window for a test to stop the process in."""

    name = "spins"

    def act(self) -> None:
        print("spinning", flush=True)
        end = time.process_time() + self.seconds
        while time.process_time() < end:
            pass


hang_stack = _optimized_only(lambda device: [Hangs(device)])
killed_stack = _optimized_only(lambda device: [KillsItsProcess(device)])
fails_in_training_stack = _optimized_only(lambda device: [FailsToPrepare(device)])

# --stack factories that are wrong in each way a usage check must catch
not_a_function = 42


def wrong_signature(config):
    return []


def raises_when_built(config, arm, device):
    raise RuntimeError("sabotage: refuses to build")


def returns_a_dict(config, arm, device):
    return {"optimized": []}


# torchrun (DDP) faults: one rank of a job dies, or every rank of every arm hangs.
class KillsRankOne(KillsItsProcess):
    """SIGKILLs its worker in the first step on global rank 1 only: the other ranks are left
    waiting for it in the gradient all-reduce."""

    name = "kills_rank_one"

    def transform_batch(self, step, inputs, targets):
        if os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return inputs, targets


def kills_rank_one_stack(config, arm, device):
    return build_stack(config, arm, device) + [KillsRankOne(device)]


def hangs_in_every_arm(config, arm, device):
    return build_stack(config, arm, device) + [Hangs(device)]
