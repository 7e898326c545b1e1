"""Trainer: trains one arm (a model plus an optimization stack) and returns an ArmResult."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from ryot.bench.data import make_splits, reference_losses
from ryot.bench.model import ScaledTransformerModel, lm_loss
from ryot.config import Config, config_from_dict
from ryot.optim.base import Optimization
from ryot.optim.probe import StepProbe
from ryot.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ryot.train.results import ArmResult, EpochMetrics
from ryot.train.timing import PeakMemory, StallMonitor, involuntary_switches, now

EVAL_BATCH_SIZE = 32
PROBE_ROWS = 4


def resolve_device(name: str) -> torch.device:
    """'cpu' or 'cuda'; ValueError when CUDA is asked for and absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu or cuda, got {name!r}")
    return torch.device(name)


def _mean_and_per_position(losses: torch.Tensor) -> tuple[float, list[float]]:
    per_position = losses.mean(dim=0)
    return float(per_position.mean()), per_position.tolist()


@contextmanager
def exact_fp32_matmuls() -> Iterator[None]:
    """TF32 off for the block: an evaluation means the same in both arms, whatever the
    kernel optimization switched on for training (on CPU the switches change nothing)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def learning_rate(step: int, training) -> float:
    """The learning rate of optimizer step `step` (0-based): linear warmup, then cosine decay.

    A pure function of the step, so a resumed run continues the schedule without saved state.
    """
    peak, warmup = training.learning_rate, training.lr_warmup_steps
    total = training.num_epochs * training.steps_per_epoch
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_steps = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    floor = peak * training.lr_min_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def curve_steps(total_steps: int, points: int) -> list[int]:
    """Optimizer steps after which the validation curve is measured: 0, ..., total, denser
    towards the end (step = total * (1 - (1 - i/points)^2)).

    Why: the matched loss every pair is judged at is one of the two arms' final losses, so the
    crossing the judge interpolates lies near the end, where the curve is flattest (0.2-0.4 s
    per 0.001 nat on the shipped bench). With 10 points on 100 steps: 0, 19, 36, 51, 64, 75,
    84, 91, 96, 99, 100.
    """
    return sorted({round(total_steps * (1.0 - (1.0 - i / points) ** 2)) for i in range(points + 1)})


def batch_indices(step: int, micro: int, batch_size: int, accumulation: int, n: int, seed: int):
    """Sample ids of micro-batch `micro` of optimizer step `step`: a function of the step alone.

    Each pass over the data is a fresh seeded permutation, so any arm, and any resumed run,
    sees exactly the same batches at the same step without carrying loader state.
    """
    start = (step * accumulation + micro) * batch_size
    first_pass, last_pass = start // n, (start + batch_size - 1) // n
    ids = []
    for p in range(first_pass, last_pass + 1):
        g = torch.Generator().manual_seed(seed * 1_000_003 + p)
        ids.append(torch.randperm(n, generator=g))
    order = torch.cat(ids)
    offset = start - first_pass * n
    return order[offset : offset + batch_size]


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
    ):
        self.config = config
        self.arm = arm
        # A callable builds the stack inside run(), on the clock: an optimization cannot do its
        # work in its constructor for free.
        self._stack_factory = stack if callable(stack) else None
        self.stack = [] if callable(stack) else list(stack)
        self.device = torch.device(device)
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every or 1  # epochs between checkpoints
        self.on_epoch = on_epoch
        self.on_step = on_step
        if config.training.threads:
            torch.set_num_threads(config.training.threads)
        m, d = config.model, config.data
        self.train_data, self.val_data, self.source = make_splits(d, m.max_seq_len, m.vocab_size)
        self.reference = reference_losses(self.source, self.val_data)
        self.curve_data = self.val_data[: config.measurement.curve_samples]
        self.curve_at = set(curve_steps(config.total_steps, config.measurement.curve_points))

    def build(self) -> tuple[ScaledTransformerModel, torch.nn.Module, torch.optim.Optimizer]:
        """The model (seeded init), the module to train, and its optimizer."""
        torch.manual_seed(self.config.training.seed)
        model = ScaledTransformerModel(self.config.model).to(self.device)
        trained: torch.nn.Module = model
        for opt in self.stack:
            trained = opt.prepare_model(trained)
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
        with StallMonitor() as stalls:
            return self._run(stalls, resume, stop_after_epoch)

    def _run(self, stalls: StallMonitor, resume: Path | None, stop_after_epoch: int | None):
        t = self.config.training
        memory = PeakMemory(self.device)
        memory.start()
        preempted = involuntary_switches()
        mark = stalls.mark()
        start = now(self.device)
        if self._stack_factory is not None:
            self.stack = list(self._stack_factory())
        stack_built = now(self.device) - start
        model, trained, optimizer = self.build()
        result = ArmResult(
            arm=self.arm,
            device=str(self.device),
            threads=torch.get_num_threads(),
            num_parameters=model.count_parameters(),
            setup_time_s=(setup := now(self.device) - start),
            # never more than the interval itself: the stack's clock must not run backwards
            setup_stall_s=min(setup, stalls.stalled_since(mark)),
            stack_build_s=stack_built,
            bayes_floor=self.reference.bayes_floor,
            unigram_loss=self.reference.unigram_loss,
        )
        self._stalls = stalls
        first_epoch = 0
        if resume is not None:
            first_epoch = self._restore(resume, model, optimizer, result)
        else:
            evaluated = time.perf_counter()
            losses = self.token_losses(model)
            result.initial_val_loss = float(losses.mean())
            self._add_curve_point(result, losses)  # step 0, from the same evaluation
            result.eval_time_s += time.perf_counter() - evaluated

        try:
            for epoch in range(first_epoch, t.num_epochs):
                metrics = self._train_epoch(epoch, trained, optimizer, result)
                result.epochs.append(metrics)
                if self.on_epoch:
                    self.on_epoch(metrics)
                if result.diverged:
                    break
                last = epoch + 1 == t.num_epochs or epoch + 1 == stop_after_epoch
                if self.checkpoint_path is not None and (
                    last or (epoch + 1) % self.checkpoint_every == 0
                ):
                    saved = time.perf_counter()
                    self._save(model, optimizer, result, epoch + 1)
                    result.checkpoint_time_s += time.perf_counter() - saved
                if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                    break
        finally:
            for opt in self.stack:
                opt.close()  # undo process-wide switches (TF32) before the fp32 evaluation
        if not result.diverged:
            evaluated = time.perf_counter()
            losses = self.token_losses(model)
            result.val_loss, result.val_loss_per_position = _mean_and_per_position(losses)
            done = len(result.step_times) == self.config.total_steps
            if done and not (result.curve and result.curve[-1]["step"] == len(result.step_times)):
                self._add_curve_point(result, losses)  # the last step's point, left to this one
            result.eval_time_s += time.perf_counter() - evaluated
        ended = stalls.mark()
        if mark.queued is not None and ended.queued is not None:
            result.run_queue_wait_s = ended.queued - mark.queued
        if preempted is not None:
            result.involuntary_switches = involuntary_switches() - preempted
        result.peak_rss_mb = memory.rss_peak_mib()
        result.peak_memory_mb = memory.peak_mib()
        result.memory_method = memory.method
        self._collect_evidence(model, optimizer, result)
        return result

    def _collect_evidence(self, model, optimizer, result: ArmResult) -> None:
        """Let each optimization measure its effect on this arm (outside the timed region)."""
        if not self.stack:
            return
        t = self.config.training
        first = self.train_data[batch_indices(0, 0, t.batch_size, 1, len(self.train_data), t.seed)]
        # A few rows suffice: kernels, dtypes and FLOP ratios do not depend on the batch size.
        first = first[:PROBE_ROWS].to(self.device)
        run_facts = {
            "step_tokens": result.step_tokens,
            "full_step_tokens": t.batch_size * t.grad_accumulation * self.config.model.max_seq_len,
            "samples_per_step": t.batch_size * t.grad_accumulation,
            "max_seq_len": self.config.model.max_seq_len,
            "model": model,
            "optimizer": optimizer,
            "probe": StepProbe(model, first[:, :-1], first[:, 1:], self._autocast),
        }
        for opt in self.stack:
            opt.finish(run_facts)
            result.evidence.append(opt.evidence.to_dict())

    def _curve_point(self, model, result: ArmResult) -> None:
        """One point of the validation curve, measured off the training clock."""
        began = time.perf_counter()
        self._add_curve_point(result, self.token_losses(model, self.curve_data))
        result.eval_time_s += time.perf_counter() - began

    def _add_curve_point(self, result: ArmResult, losses: torch.Tensor) -> None:
        """The curve point at this step: the mean loss of the first curve_samples rows. A full
        evaluation's rows include them, so the first and last points reuse that evaluation."""
        loss = float(losses[: len(self.curve_data)].mean())
        step = len(result.step_times)
        result.curve.append({"step": step, "clock_s": result.clock_s, "val_loss": loss})

    def _train_epoch(self, epoch, trained, optimizer, result: ArmResult) -> EpochMetrics:
        t = self.config.training
        trained.train()
        losses, norms, tokens, samples, elapsed = [], [], 0, 0, 0.0
        for i in range(t.steps_per_epoch):
            step = epoch * t.steps_per_epoch + i
            mark = self._stalls.mark()
            began = now(self.device)
            loss, norm, fed = self.train_step(step, trained, optimizer)
            took = now(self.device) - began
            result.step_stalls.append(min(took, self._stalls.stalled_since(mark)))
            result.step_times.append(took)
            result.step_losses.append(loss)
            result.step_tokens.append(fed)
            result.train_time_s += took
            elapsed += took
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
                self._curve_point(getattr(trained, "_orig_mod", trained), result)
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
            ids = batch_indices(
                step, micro, t.batch_size, t.grad_accumulation, len(self.train_data), t.seed
            )
            batch = self.train_data[ids].to(self.device, non_blocking=True)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            for opt in self.stack:
                inputs, targets = opt.transform_batch(step, inputs, targets)
            with self._autocast():
                loss = lm_loss(trained(inputs), targets) / t.grad_accumulation
            loss.backward()
            total_loss += loss.item()
            fed += inputs.numel()
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

    def evaluate(
        self, model: ScaledTransformerModel, data: torch.Tensor | None = None
    ) -> tuple[float, list[float]]:
        """Validation loss (see token_losses): the mean over every token, and at each position."""
        return _mean_and_per_position(self.token_losses(model, data))

    @torch.no_grad()
    def token_losses(
        self, model: ScaledTransformerModel, data: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each token's validation loss (rows, T) in float64: full length, eval mode, fp32
        matmuls (TF32 off, whatever the stack switched on), on the uncompiled model."""
        data = self.val_data if data is None else data
        was_training = model.training
        model.eval()
        rows = []
        with exact_fp32_matmuls():
            for chunk in data.split(EVAL_BATCH_SIZE):
                chunk = chunk.to(self.device)
                logits = model(chunk[:, :-1]).float()  # (B, T, V)
                losses = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), chunk[:, 1:], reduction="none"
                )  # (B, T)
                rows.append(losses.double().cpu())
        model.train(was_training)
        return torch.cat(rows)

    def _save(self, model, optimizer, result: ArmResult, epoch: int) -> None:
        state = {
            "arm": self.arm,
            "model": model.state_dict(),
            "model_config": model.get_config(),
            "optimizer": optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()}
            | ({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
            "config": self.config.to_dict(),
            "epoch": epoch,
            "step": len(result.step_times),
            "loss": result.epochs[-1].mean_loss,
            "elapsed_s": result.total_time_s,
            "history": {
                "step_times": result.step_times,
                "step_losses": result.step_losses,
                "step_tokens": result.step_tokens,
                "step_stalls": result.step_stalls,
                "setup_stall_s": result.setup_stall_s,
                "stack_build_s": result.stack_build_s,
                "epochs": [dataclasses.asdict(e) for e in result.epochs],
                "setup_time_s": result.setup_time_s,
                "curve": result.curve,
                "initial_val_loss": result.initial_val_loss,
            },
        }
        save_checkpoint(state, self.checkpoint_path)

    def _restore(self, path: Path, model, optimizer, result: ArmResult) -> int:
        state = load_checkpoint(path)
        saved = config_from_dict(state["config"], f"{path} (config snapshot)", snapshot=True)
        for section in ("model", "data", "training", "optimizations"):
            if getattr(saved, section) != getattr(self.config, section):
                raise CheckpointError(
                    f"{path}: checkpoint was trained with a different {section} config"
                )
        if state.get("arm") != self.arm:
            raise CheckpointError(
                f"{path}: checkpoint is of arm {state.get('arm')!r}, not {self.arm!r}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        history = state["history"]
        result.step_times = list(history["step_times"])
        result.step_losses = list(history["step_losses"])
        result.step_tokens = list(history["step_tokens"])
        result.step_stalls = list(history.get("step_stalls", [0.0] * len(result.step_times)))
        result.setup_stall_s = history.get("setup_stall_s", 0.0)
        result.stack_build_s = history.get("stack_build_s", 0.0)
        result.epochs = [EpochMetrics(**e) for e in history["epochs"]]
        result.train_time_s = sum(result.step_times)
        result.setup_time_s = history["setup_time_s"]
        result.curve = list(history.get("curve", []))
        result.initial_val_loss = history.get("initial_val_loss")
        result.resumed_from_step = state["step"]
        return int(state["epoch"])
