"""The one interface through which the trainer applies an optimization, and its evidence.

An optimization touches the run at four seams: the model (before the optimizer is built), the
optimizer's options, the forward pass's numeric context, and each step's batch. After the run it
reports what it applied, what it skipped and why, and measurements of its effect. Whether it had
an effect is judged from measurements of the arm (see ryot.optim.probe), never from its own word.
An optimization that changes process-wide state (a backend flag) undoes it in `close`. One that
cannot apply to the model (a team's model without what it needs) says why in `cannot_apply`,
asked before any run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Evidence:
    name: str
    enabled: bool
    settings: dict[str, Any] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"what": ..., "why": ...}
    measurements: dict[str, Any] = field(default_factory=dict)
    # {"kind": "NoEffect" | "Shortcut", "detail": ...}: any finding makes the evidence fail.
    findings: list[dict[str, str]] = field(default_factory=list)

    def skip(self, what: str, why: str) -> None:
        self.skipped.append({"what": what, "why": why})

    def no_effect(self, detail: str) -> None:
        self.findings.append({"kind": "NoEffect", "detail": detail})

    def shortcut(self, detail: str) -> None:
        """A measured effect that buys speed by learning less (e.g. never a full context)."""
        self.findings.append({"kind": "Shortcut", "detail": detail})

    @property
    def effective(self) -> bool:
        """A measured effect, and not a shortcut: no finding of any kind."""
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "settings": self.settings,
            "applied": self.applied,
            "skipped": self.skipped,
            "measurements": self.measurements,
            "findings": self.findings,
            "effective": self.effective,
        }


@dataclass
class RunFacts:
    """What the trainer measured of a finished run, handed to each optimization's `finish`."""

    step_tokens: list[int]  # input tokens each optimizer step fed, as measured
    full_step_tokens: int  # what a step at full length feeds: batch x accumulation x max_seq_len
    samples_per_step: int  # batch x accumulation
    max_seq_len: int
    model: nn.Module | None  # the trained model, uncompiled
    optimizer: torch.optim.Optimizer | None
    # One step of this arm, and of its references: a ryot.optim.probe.StepProbe, not imported
    # here, since the probe imports the built-ins (to undo each on its copy) and they this module.
    probe: Any


class Optimization:
    """Base class: every hook is the identity, so a subclass overrides only its own seams."""

    name: ClassVar[str] = "optimization"

    def __init__(self, device: torch.device):
        self.device = device
        self.evidence = Evidence(name=self.name, enabled=self.enabled)

    @property
    def enabled(self) -> bool:
        return False

    def cannot_apply(self, model: nn.Module) -> str | None:
        """Why this optimization, switched on, cannot apply to `model` (one line), else None.

        Asked before any run (ryot.optim.applicability), on a throwaway copy it may change: a
        model Ryot does not own may lack what an optimization needs, and training it anyway
        would be a silent no-op, not a result."""
        return None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Called once before the optimizer is built; returns the module to train."""
        return model

    def optimizer_options(self) -> dict[str, Any]:
        """Extra keyword arguments for torch.optim.AdamW."""
        return {}

    def autocast(self) -> contextlib.AbstractContextManager:
        """The numeric context of the forward pass and loss."""
        return contextlib.nullcontext()

    def transform_batch(
        self, step: int, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch actually fed at optimizer step `step` (0-based)."""
        return inputs, targets

    def finish(self, run: RunFacts) -> None:
        """Record measurements of the finished run (its step tokens, a probe, ...)."""

    def close(self) -> None:
        """Undo process-wide state set by prepare_model; idempotent.

        The trainer calls it when training ends, even on error, and an optimization that sets
        such state calls it from its own `finish` too: a later arm in the same process (the
        baseline, say) must never inherit this arm's settings.
        """
