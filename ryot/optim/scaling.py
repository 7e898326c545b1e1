"""InferenceScalingEngine: sequence-length warmup (a length curriculum).

For the first `warmup_steps` optimizer steps the batch is truncated to a length that grows
linearly from `min_seq_len` to max_seq_len, rounded down to a multiple of `step_size` (few
distinct lengths: fewer kernel shapes, and fewer recompiles under torch.compile). Inputs and
targets are truncated together, so every kept position still predicts its true next token.
"""

from __future__ import annotations

from typing import Any

import torch

from ryot.optim.base import Optimization


def warmup_length(step: int, warmup_steps: int, min_len: int, max_len: int, step_size: int) -> int:
    """Sequence length fed at optimizer step `step` (0-based)."""
    if step >= warmup_steps:
        return max_len
    length = min_len + (max_len - min_len) * step / warmup_steps
    length = int(length) // step_size * step_size
    return max(min_len, min(max_len, length))


class InferenceScalingEngine(Optimization):
    name = "scaling"

    def __init__(
        self, device: torch.device, warmup_steps: int, min_seq_len: int, step_size: int,
        max_seq_len: int,
    ):  # fmt: skip
        self.warmup_steps = warmup_steps
        self.min_seq_len = min(min_seq_len, max_seq_len)
        self.step_size = step_size
        self.max_seq_len = max_seq_len
        super().__init__(device)
        self.evidence.settings = {
            "warmup_steps": warmup_steps, "min_seq_len": min_seq_len, "step_size": step_size,
        }  # fmt: skip
        if self.enabled:
            self.evidence.applied.append(
                f"sequence length {self.min_seq_len} -> {max_seq_len} over {warmup_steps} steps"
            )

    @property
    def enabled(self) -> bool:
        return self.warmup_steps > 0

    def length_at(self, step: int) -> int:
        return warmup_length(
            step, self.warmup_steps, self.min_seq_len, self.max_seq_len, self.step_size
        )

    def transform_batch(self, step, inputs, targets):
        if not self.enabled:
            return inputs, targets
        length = self.length_at(step)
        return inputs[:, :length], targets[:, :length]

    def schedule(self, total_steps: int) -> list[list[int]]:
        """[first_step, length] at each change of length (1-based steps)."""
        changes, last = [], None
        for step in range(total_steps):
            length = self.length_at(step)
            if length != last:
                changes.append([step + 1, length])
                last = length
        return changes

    def finish(self, run: dict[str, Any]) -> None:
        if not self.enabled:
            return
        tokens = run["step_tokens"]
        full = run["full_step_tokens"]
        ev = self.evidence
        ev.measurements.update(
            tokens_per_step=tokens,
            full_tokens_per_step=full,
            tokens_fraction=round(sum(tokens) / (full * len(tokens)), 4) if tokens else None,
            schedule=self.schedule(len(tokens)),
        )
        if tokens and min(tokens) >= full:
            ev.no_effect(f"every step fed the full {full} tokens")
