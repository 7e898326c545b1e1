"""Trainer: trains one arm (a model plus an optimization stack) and returns an ArmResult.

`Trainer.run` reads top to bottom: setup, the initial evaluation (or a checkpoint's history),
the epochs, the stack's close() and evidence, the final checkpoint and evaluation.

The clock owns every second the stack spends: setup (the stack's construction included, and
in a worker its module's import), every step, close() and finish(). No stack code runs while
the clock is stopped: evaluations and checkpoints are Ryot's own work on a second instance of
the model (Ryot's or the team's: ryot.bench.workload) that the stack never sees, into which the
trained parameters are copied (the same tensors the optimizer updates, looked up before the
stack touched the model). A forward hook, a wrapper's forward, an EMA or a deferred update
cannot run there, so an evaluation means the same in both arms and costs neither (eval_time_s,
checkpoint_time_s).
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ryot.bench.model import lm_loss
from ryot.bench.workload import build_model, load_workload, model_record
from ryot.config import Config, config_from_dict
from ryot.optim.base import Optimization, RunFacts
from ryot.optim.probe import StepProbe
from ryot.train.checkpoint import (
    CheckpointError,
    CheckpointState,
    History,
    load_state,
    resume_problem,
    save_checkpoint,
)
from ryot.train.distributed import World, threads_per_rank
from ryot.train.evaluation import mean_and_per_position, token_losses
from ryot.train.meter import RunMeter, now
from ryot.train.results import ArmResult, CurvePoint, EpochMetrics
from ryot.train.schedule import curve_steps, learning_rate

PROBE_ROWS = 4


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters, each counted once (a tied embedding and head are one tensor)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def resolve_device(name: str) -> torch.device:
    """'cpu' or 'cuda'; ValueError when CUDA is asked for and absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu or cuda, got {name!r}")
    return torch.device(name)


@dataclass
class _Arm:
    """What setup builds and the rest of the run works on."""

    model: torch.nn.Module  # evaluated, probed and checkpointed
    trained: torch.nn.Module  # what the steps call: the model as the stack prepared it
    optimizer: torch.optim.Optimizer


class Trainer:
    """Trains one arm of the experiment for num_epochs x steps_per_epoch optimizer steps."""

    def __init__(
        self,
        config: Config,
        arm: str = "baseline",
        stack: Sequence[Optimization] | Callable[[], Sequence[Optimization]] = (),
        device: torch.device | str = "cpu",
        checkpoint_path: Path | None = None,
        checkpoint_every: int | None = None,
        on_epoch: Callable[[EpochMetrics], None] | None = None,
        on_step: Callable[[int, int, float], None] | None = None,
        world: World | None = None,
    ):
        self.config = config
        # A torchrun job's place (ryot.train.distributed); a single process is a world of one.
        self.world = world or World()
        self.arm = arm
        # A callable builds the stack inside run(), on the clock: an optimization cannot do its
        # work in its constructor for free.
        self._stack_factory = stack if callable(stack) else None
        self.stack = [] if callable(stack) else list(stack)
        self.device = self.world.device(torch.device(device))
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every or 1  # epochs between checkpoints
        self.on_epoch = on_epoch
        self.on_step = on_step
        if self.world.distributed and self.device.type == "cpu":
            # the machine's cores (or training.threads) split between the ranks on it
            total = config.training.threads or os.cpu_count() or 1
            torch.set_num_threads(threads_per_rank(total, self.world.local_size))
        elif config.training.threads:
            torch.set_num_threads(config.training.threads)
        # Ryot's language or the team's token files (ryot.bench.workload), before any clock:
        # both arms build the same data the same way.
        self.workload = load_workload(config)
        self.train_split, self.val_data = self.workload.train, self.workload.val
        self.reference = self.workload.reference
        self.curve_data = self.val_data[: config.measurement.curve_samples]
        self.curve_at = set(curve_steps(config.total_steps, config.measurement.curve_points))

    @property
    def train_data(self) -> torch.Tensor:
        """The synthetic language's training rows (tests and benchmarks read them whole)."""
        return self.train_split.data

    def build(self) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
        """The model (seeded init), the module to train, and its optimizer."""
        torch.manual_seed(self.config.training.seed)
        model = build_model(self.config.model).to(self.device)
        # The tensors the optimizer updates, found before any optimization touches the model:
        # what every evaluation and checkpoint copies (see _snapshot).
        self._trained_parameters = dict(model.named_parameters())
        trained: torch.nn.Module = model
        for opt in self.stack:
            trained = opt.prepare_model(trained)
        if self.world.distributed:
            # gradients averaged over the ranks in backward; the optimizer still holds `model`'s
            # own parameters, which DDP keeps identical on every rank
            ids = [self.device.index] if self.device.type == "cuda" else None
            trained = torch.nn.parallel.DistributedDataParallel(trained, device_ids=ids)
        options: dict[str, Any] = {}
        for opt in self.stack:
            options.update(opt.optimizer_options())
        t = self.config.training
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay, **options
        )
        return model, trained, optimizer

    def run(self, resume: Path | None = None, stop_after_epoch: int | None = None) -> ArmResult:
        """Train (or continue from `resume`) and evaluate; stops at the first NaN/Inf."""
        self._own_step_times: list[float] = []
        # Built before the meter: its memory and its construction are the protocol's, alike in
        # both arms. build() reseeds, so the trained model's init is unchanged.
        self._eval_model = build_model(self.config.model).to(self.device)
        # The objects alive now (Ryot's, and in process the test harness's: a full collection
        # of those took 0.15-0.19 s inside a 0.1 s smoke run, in whichever arm it fell) are
        # left out of the run's collections; the stack's own garbage is still collected on its
        # clock. Freezing costs nothing; a gc.collect() here cost more than the runs.
        gc.freeze()
        try:
            return self._run(resume, stop_after_epoch)
        finally:
            gc.unfreeze()

    def _run(self, resume: Path | None, stop_after_epoch: int | None) -> ArmResult:
        with RunMeter(self.device) as meter:
            arm, result = self._timed_setup(meter)
            if resume is None:
                first_epoch = 0
                self._evaluate_initial(result)
            else:
                first_epoch = self._restore(resume, arm, result)
            try:
                checkpoint_due = self._train_epochs(
                    first_epoch, stop_after_epoch, arm, result, meter
                )
            except BaseException:
                self._close_stack()  # best effort: the run is lost, the process may go on
                raise
            self._timed_close(arm, result, meter)
            if checkpoint_due is not None:
                self._checkpoint(arm, result, checkpoint_due, meter)
            if not result.diverged:
                self._evaluate_final(result)
            meter.finish(result)
            if self.world.distributed:
                # every rank's own step times (before the step's barrier): the skew between them
                result.rank_step_times = self.world.gather(self._own_step_times)
        return result

    def _timed_setup(self, meter: RunMeter) -> tuple[_Arm, ArmResult]:
        """Build the stack, the model, the optimizations' changes and the optimizer, on the
        arm's clock: all of it is work the stack costs. Its stall counts from the run's start."""
        with meter.span(since=meter.start) as setup:
            if self._stack_factory is not None:
                self.stack = list(self._stack_factory())
            stack_built = now(self.device) - setup.began
            model, trained, optimizer = self.build()
            trained.train()  # the stack's module may run its own code here: on the clock
            num_parameters = count_parameters(model)
        result = ArmResult(
            arm=self.arm,
            device=str(self.device),
            threads=torch.get_num_threads(),
            num_parameters=num_parameters,
            world_size=self.world.size,
            backend=self.world.backend,
            setup_time_s=setup.took,
            setup_stall_s=setup.stall,
            stack_build_s=stack_built,
            bayes_floor=self.reference.bayes_floor,
            unigram_loss=self.reference.unigram_loss,
        )
        result.stopped_s, result.contended_s = setup.stopped, setup.contended
        return _Arm(model, trained, optimizer), result

    @torch.no_grad()
    def _snapshot(self) -> torch.nn.Module:
        """Ryot's own model holding the trained parameters as they are now: plain tensor
        copies, so no code of the stack's runs (no hook, no wrapper, no state_dict hook)."""
        for name, target in self._eval_model.named_parameters():
            target.copy_(self._trained_parameters[name].detach())
        return self._eval_model

    def _evaluate_initial(self, result: ArmResult) -> None:
        """The untrained model's full validation loss, off the clock; the curve's step-0 point
        comes from the same evaluation. In a torchrun job rank 0 evaluates (the others wait)."""
        began = time.perf_counter()
        if self.world.is_main:
            losses = token_losses(self._snapshot(), self.val_data, self.device)
            result.initial_val_loss = float(losses.mean())
            self._add_curve_point(result, losses)
        self.world.barrier()
        result.eval_time_s += time.perf_counter() - began

    def _train_epochs(
        self, first_epoch: int, stop_after_epoch: int | None, arm: _Arm, result: ArmResult,
        meter: RunMeter,
    ) -> None:  # fmt: skip
        """Epochs from `first_epoch` on, each followed by its checkpoint when one is due; stops
        at a divergence, or after epoch `stop_after_epoch`. Returns the epochs done when the
        last checkpoint is still due: it is written after the stack's close(), so it holds
        whatever close() did to the weights."""
        t = self.config.training
        for epoch in range(first_epoch, t.num_epochs):
            metrics = self._train_epoch(epoch, arm.trained, arm.optimizer, result, meter)
            result.epochs.append(metrics)
            if self.on_epoch:
                self.on_epoch(metrics)
            if result.diverged:
                return None
            done = epoch + 1
            last = done == t.num_epochs or done == stop_after_epoch
            if self.checkpoint_path is not None and last:
                return done
            if self.checkpoint_path is not None and done % self.checkpoint_every == 0:
                self._checkpoint(arm, result, done, meter)
            if stop_after_epoch is not None and done >= stop_after_epoch:
                return None
        return None

    def _close_stack(self) -> None:
        for opt in self.stack:
            opt.close()  # undo process-wide switches (TF32) before the fp32 evaluation

    def _timed_close(self, arm: _Arm, result: ArmResult, meter: RunMeter) -> None:
        """The stack's close() and its evidence (finish()) after the last step, on the clock:
        work moved there is still the stack's. The final curve point is read after it."""
        with meter.span() as closing:
            self._close_stack()
            probe = self._collect_evidence(arm, result)
        # The evidence probe's fingerprints (forward and backward passes on throwaway copies of
        # the model, under FLOP counters) are Ryot's instrument, timed apart like an evaluation;
        # the rest of finish() is the stack's.
        measuring = min(closing.took, probe.seconds if probe is not None else 0.0)
        result.eval_time_s += measuring
        result.close_time_s = closing.took - measuring
        result.close_stall_s = min(closing.stall, result.close_time_s)
        # The signals of the stall charged to the clock, never of the probe's time off it: a
        # contended share past 1 of the run's wall time was read beside two CPU hogs.
        result.stopped_s += min(closing.stopped, result.close_stall_s)
        result.contended_s += min(closing.contended, result.close_stall_s)

    def _train_epoch(
        self, epoch: int, trained, optimizer, result: ArmResult, meter: RunMeter
    ) -> EpochMetrics:
        """One epoch's steps, each recorded in `result` as it ends; a non-finite loss or
        gradient norm marks the run diverged and ends the epoch."""
        t = self.config.training
        losses, norms, tokens, samples, elapsed = [], [], 0, 0, 0.0
        for i in range(t.steps_per_epoch):
            step = epoch * t.steps_per_epoch + i
            with meter.span() as span:
                loss, norm, fed = self.train_step(step, trained, optimizer)
                if self.world.distributed:
                    # this rank's own time; then the step ends for all ranks together, so rank
                    # 0's clock (the one judged) includes the slowest rank. A single process
                    # pays neither the extra synchronizing clock read nor the barrier.
                    self._own_step_times.append(now(self.device) - span.began)
                    self.world.barrier()
            result.step_stalls.append(span.stall)
            result.stopped_s += span.stopped
            result.contended_s += span.contended
            result.step_times.append(span.took)
            result.step_losses.append(loss)
            result.step_tokens.append(fed)
            result.train_time_s += span.took
            elapsed += span.took
            tokens += fed
            samples += t.batch_size * t.grad_accumulation
            losses.append(loss)
            norms.append(norm)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                result.diverged = True
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                result.divergence = (
                    f"{what} is {loss if what == 'loss' else norm} at step {step + 1}"
                )
                break
            if self.on_step:
                self.on_step(step + 1, self.config.total_steps, loss)
            # The last step's point comes from the final full evaluation (see run).
            if step + 1 in self.curve_at and step + 1 < self.config.total_steps:
                self._curve_point(result)
        return EpochMetrics(
            epoch=epoch + 1,
            mean_loss=sum(losses) / len(losses),
            time_s=elapsed,
            tokens=tokens,
            samples=samples,
            tokens_per_s=tokens / elapsed if elapsed > 0 else 0.0,
            samples_per_s=samples / elapsed if elapsed > 0 else 0.0,
            grad_norm=sum(norms) / len(norms),
            status="diverged" if result.diverged else "ok",
        )

    def train_step(self, step: int, trained, optimizer) -> tuple[float, float, int]:
        """One optimizer step; returns (loss, pre-clip gradient norm, input tokens fed)."""
        t = self.config.training
        lr = learning_rate(step, t)
        for group in optimizer.param_groups:
            group["lr"] = lr
        total_loss, fed = 0.0, 0
        for micro in range(t.grad_accumulation):
            ids = self.train_split.batch(step, micro, t.batch_size, t.grad_accumulation, t.seed)
            ids = self.world.shard(ids)  # this rank's slice of the same global batch
            batch = self.train_split.rows(ids).to(self.device, non_blocking=True)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            for opt in self.stack:
                inputs, targets = opt.transform_batch(step, inputs, targets)
            with self._autocast():
                loss = lm_loss(trained(inputs), targets) / t.grad_accumulation
            loss.backward()
            total_loss += loss.item()
            fed += inputs.numel()
        if self.world.distributed:  # the batch's loss and tokens, as one process would see them
            total_loss, fed_sum = self.world.sum([total_loss, fed])
            total_loss, fed = total_loss / self.world.size, int(fed_sum)
        params = [p for p in optimizer.param_groups[0]["params"] if p.grad is not None]
        if t.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        norm = float(norm)
        if math.isfinite(total_loss) and math.isfinite(norm):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total_loss, norm, fed

    def _autocast(self) -> ExitStack:
        stack = ExitStack()
        for opt in self.stack:
            stack.enter_context(opt.autocast())
        return stack

    def _curve_point(self, result: ArmResult) -> None:
        """One point of the validation curve, measured off the training clock (by rank 0)."""
        began = time.perf_counter()
        if self.world.is_main:
            losses = token_losses(self._snapshot(), self.curve_data, self.device)
            self._add_curve_point(result, losses)
        self.world.barrier()
        result.eval_time_s += time.perf_counter() - began

    def _add_curve_point(self, result: ArmResult, losses: torch.Tensor) -> None:
        """The curve point at this step: the mean loss of the first curve_samples rows. A full
        evaluation's rows include them, so the first and last points reuse that evaluation."""
        loss = float(losses[: len(self.curve_data)].mean())
        result.curve.append(CurvePoint(len(result.step_times), result.clock_s, loss))

    def _evaluate_final(self, result: ArmResult) -> None:
        """The trained model's full validation loss, mean and per position, off the clock. A
        finished run's last curve point comes from it, unless it has one already (a finished
        run resumed from its last checkpoint)."""
        began = time.perf_counter()
        if self.world.is_main:
            losses = token_losses(self._snapshot(), self.val_data, self.device)
            result.val_loss, result.val_loss_per_position = mean_and_per_position(losses)
            steps = len(result.step_times)
            done = steps == self.config.total_steps
            if done and not (result.curve and result.curve[-1].step == steps):
                self._add_curve_point(result, losses)
        self.world.barrier()
        result.eval_time_s += time.perf_counter() - began

    def _collect_evidence(self, arm: _Arm, result: ArmResult) -> StepProbe | None:
        """Let each optimization measure its effect on this arm: its finish(), on the clock
        (see _timed_close), like every other line of the stack's."""
        if not self.stack or not self.world.is_main:
            return None
        t, max_len = self.config.training, self.config.model.max_seq_len
        first = self.train_split.rows(self.train_split.batch(0, 0, t.batch_size, 1, t.seed))
        # A few rows suffice: kernels, dtypes and FLOP ratios do not depend on the batch size.
        first = first[:PROBE_ROWS].to(self.device)
        facts = RunFacts(
            step_tokens=result.step_tokens,
            full_step_tokens=t.batch_size * t.grad_accumulation * max_len,
            samples_per_step=t.batch_size * t.grad_accumulation,
            max_seq_len=max_len,
            model=arm.model,
            optimizer=arm.optimizer,
            probe=StepProbe(arm.model, first[:, :-1], first[:, 1:], self._autocast),
        )
        for opt in self.stack:
            opt.finish(facts)
            result.evidence.append(opt.evidence.to_dict())
        return facts.probe

    def _checkpoint(self, arm: _Arm, result: ArmResult, epoch: int, meter: RunMeter) -> None:
        """Save the run after `epoch` epochs; once, by rank 0. The weights come from Ryot's own
        model (_snapshot); the optimizer's state_dict() may run the stack's hooks, so that call
        is on the clock (charged to the last step); the rest is off it."""
        if not self.world.is_main:
            self.world.barrier()
            return
        with meter.span() as span:
            optimizer_state = arm.optimizer.state_dict()
        result.step_times[-1] += span.took
        result.step_stalls[-1] += span.stall
        result.train_time_s += span.took
        began = time.perf_counter()
        model = self._snapshot()
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = CheckpointState(
            arm=self.arm,
            model=model.state_dict(),
            model_config=model_record(self.config.model),
            data=self.workload.data_record,
            optimizer=optimizer_state,
            rng=rng,
            config=self.config.to_dict(),
            epoch=epoch,
            step=len(result.step_times),
            loss=result.epochs[-1].mean_loss,
            elapsed_s=result.wall_time_s,
            history=History.of(result),
        )
        save_checkpoint(state.to_dict(), self.checkpoint_path)
        self.world.barrier()
        result.checkpoint_time_s += time.perf_counter() - began

    def _restore(self, path: Path, arm: _Arm, result: ArmResult) -> int:
        """Continue the checkpoint at `path`: its weights, optimizer state, random state and
        history go into this run. Returns the epochs it had done."""
        state = load_state(path)
        saved = config_from_dict(state.config, f"{path} (config snapshot)", snapshot=True)
        problem = resume_problem(state.arm, saved, self.arm, self.config)
        if problem is not None:
            raise CheckpointError(f"{path}: {problem}")
        if state.history is None:
            raise CheckpointError(f"{path}: checkpoint has no training history to continue")
        files = (state.data or {}).get("files")
        if files is not None and files != self.workload.data_record.get("files"):
            # the same data.path, other contents: the batches would not continue the run's
            raise CheckpointError(f"{path}: checkpoint was trained on token files with other "
                                  "contents (their sha256 differ)")  # fmt: skip
        arm.model.load_state_dict(state.model)
        arm.optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.rng["torch"])
        if "cuda" in state.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state.rng["cuda"])
        state.history.restore(result)
        result.resumed_from_step = state.step
        return state.epoch
