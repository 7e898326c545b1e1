"""Atomic checkpoints: written to a temporary file beside the target, then renamed over it.

A crash mid-write leaves the previous checkpoint whole, because os.replace is atomic on one file
system and the target is never opened for writing.

On disk a checkpoint is a plain dict of tensors and built-in types (torch.load reads it with
weights_only=True); CheckpointState is that dict, typed, and `resume_problem` is the one rule of
which run a checkpoint may continue.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ryot.config import Config
from ryot.train.results import ArmResult, CurvePoint, EpochMetrics

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arm", "model", "optimizer", "rng", "config", "epoch", "step")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or is not one of ours."""


@dataclass
class History:
    """What the run measured up to the checkpoint: a resumed run's result continues from it, so
    its steps, curve and clock read as one run's."""

    step_times: list[float]
    step_losses: list[float]
    step_tokens: list[int]
    epochs: list[EpochMetrics]
    setup_time_s: float
    # absent from checkpoints older than the measurement that fills it: the defaults (no
    # stalls seen, no curve)
    step_stalls: list[float] = field(default_factory=list)
    setup_stall_s: float = 0.0
    stack_build_s: float = 0.0
    curve: list[CurvePoint] = field(default_factory=list)
    initial_val_loss: float | None = None

    @classmethod
    def of(cls, result: ArmResult) -> History:
        return cls(
            step_times=list(result.step_times),
            step_losses=list(result.step_losses),
            step_tokens=list(result.step_tokens),
            epochs=list(result.epochs),
            setup_time_s=result.setup_time_s,
            step_stalls=list(result.step_stalls),
            setup_stall_s=result.setup_stall_s,
            stack_build_s=result.stack_build_s,
            curve=list(result.curve),
            initial_val_loss=result.initial_val_loss,
        )

    def restore(self, result: ArmResult) -> None:
        """Put the history into a fresh run's result (whose setup this run measured again)."""
        result.step_times = list(self.step_times)
        result.step_losses = list(self.step_losses)
        result.step_tokens = list(self.step_tokens)
        result.step_stalls = list(self.step_stalls)
        result.setup_stall_s = self.setup_stall_s
        result.stack_build_s = self.stack_build_s
        result.epochs = list(self.epochs)
        result.train_time_s = sum(result.step_times)
        result.setup_time_s = self.setup_time_s
        result.curve = list(self.curve)
        result.initial_val_loss = self.initial_val_loss

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_times": self.step_times,
            "step_losses": self.step_losses,
            "step_tokens": self.step_tokens,
            "step_stalls": self.step_stalls,
            "setup_stall_s": self.setup_stall_s,
            "stack_build_s": self.stack_build_s,
            "epochs": [dataclasses.asdict(e) for e in self.epochs],
            "setup_time_s": self.setup_time_s,
            "curve": [dataclasses.asdict(p) for p in self.curve],
            "initial_val_loss": self.initial_val_loss,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            step_times=data["step_times"],
            step_losses=data["step_losses"],
            step_tokens=data["step_tokens"],
            epochs=[EpochMetrics(**e) for e in data["epochs"]],
            setup_time_s=data["setup_time_s"],
            step_stalls=data.get("step_stalls", [0.0] * len(data["step_times"])),
            setup_stall_s=data.get("setup_stall_s", 0.0),
            stack_build_s=data.get("stack_build_s", 0.0),
            curve=[CurvePoint(**p) for p in data.get("curve", [])],
            initial_val_loss=data.get("initial_val_loss"),
        )


@dataclass
class CheckpointState:
    """One arm's training, saved after a whole epoch: enough to continue it exactly."""

    arm: str
    model: dict[str, torch.Tensor]  # the uncompiled model's state_dict
    optimizer: dict[str, Any]  # the optimizer's state_dict
    rng: dict[str, Any]  # {"torch": the CPU generator's state, "cuda": each device's, if any}
    config: dict[str, Any]  # the run's Config.to_dict(): a snapshot, read with snapshot=True
    epoch: int  # epochs done
    step: int  # optimizer steps done
    # what `ryot serve` and a resume read beyond the required keys; None in a bare checkpoint
    # (tests write them), which can be served but not resumed
    # What was trained (ryot.bench.workload): the model (Ryot's, or the factory and its
    # arguments) and the data (its source; token files' counts and content hashes)
    model_config: dict[str, Any] | None = None  # ryot.bench.workload.model_record
    data: dict[str, Any] | None = None  # Workload.data_record
    loss: float | None = None  # the last epoch's mean training loss
    elapsed_s: float | None = None  # setup plus steps, as the wall clock saw them
    history: History | None = None

    def to_dict(self) -> dict[str, Any]:
        """The dict save_checkpoint writes (not dataclasses.asdict: that would copy every
        tensor)."""
        return {
            "arm": self.arm,
            "model": self.model,
            "model_config": self.model_config,
            "data": self.data,
            "optimizer": self.optimizer,
            "rng": self.rng,
            "config": self.config,
            "epoch": self.epoch,
            "step": self.step,
            "loss": self.loss,
            "elapsed_s": self.elapsed_s,
            "history": None if self.history is None else self.history.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CheckpointState:
        """The state load_checkpoint read (its required keys checked there)."""
        history = state.get("history")
        return cls(
            arm=state["arm"],
            model=state["model"],
            optimizer=state["optimizer"],
            rng=state["rng"],
            config=state["config"],
            epoch=int(state["epoch"]),
            step=int(state["step"]),
            model_config=state.get("model_config"),
            data=state.get("data"),
            loss=state.get("loss"),
            elapsed_s=state.get("elapsed_s"),
            history=None if history is None else History.from_dict(history),
        )


def resume_problem(
    saved_arm: str | None, saved: Config, arm: str, config: Config, *, any_seed: bool = False
) -> str | None:
    """Why a checkpoint of `saved_arm`, trained with `saved` (its config snapshot), cannot
    continue `arm` under `config`; None when it can. The CLI passes `any_seed`: it continues
    with the checkpoint's own seed, because a later pair's checkpoint has seed + repeat."""
    if saved_arm != arm:
        return f"checkpoint is of arm {saved_arm!r}, not {arm!r}"
    for section in ("model", "data", "optimizations"):
        if getattr(saved, section) != getattr(config, section):
            return f"checkpoint was trained with a different {section} config"
    training = dataclasses.replace(saved.training, seed=config.training.seed)
    if (training if any_seed else saved.training) != config.training:
        return "checkpoint was trained with a different training config"
    return None


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` atomically; a failed write is an OSError naming `path`."""
    # Serialized in memory first: torch.save writing to a file that fills up raises an opaque
    # "enforce fail at inline_container.cc"; our own write raises ENOSPC, which says why.
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint; CheckpointError says what is wrong."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        # weights_only=True: a checkpoint is data, never code to run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a Ryot checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a Ryot checkpoint (missing {', '.join(missing)})")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {state['format_version']!r}, expected {FORMAT_VERSION}"
        )
    return state


def load_state(path: Path) -> CheckpointState:
    """load_checkpoint's state, typed."""
    return CheckpointState.from_dict(load_checkpoint(path))
