"""InferenceScalingEngine: sequence-length warmup (a length curriculum).

For the first `warmup_steps` optimizer steps the batch is truncated to a length that grows
linearly from `min_seq_len` at step 0 to max_seq_len at the warmup's last step, rounded up to a
multiple of `step_size` (few distinct lengths: fewer kernel shapes, and fewer recompiles under
torch.compile). Rounding up, never down, is what makes full length arrive inside the warmup:
a warmup as long as the run still trains at full length for its last third. Inputs and targets
are truncated together, so every kept position still predicts its true next token.

The evidence describes the lengths the run was measured to feed (its step tokens), never the
settings: a curriculum that never reaches full length trains a model that has never seen a
full context, which is a shortcut, not an optimization.

Any causal LM that accepts a shorter input can be warmed up this way, Ryot's or a team's; one
that cannot is a usage error before any run (`cannot_apply`).
"""

from __future__ import annotations

import torch
from torch import nn

from ryot.optim.base import Optimization, RunFacts


def warmup_length(step: int, warmup_steps: int, min_len: int, max_len: int, step_size: int) -> int:
    """Sequence length fed at optimizer step `step` (0-based)."""
    if step >= warmup_steps or min_len >= max_len:
        return max_len
    # The linear ramp reaches max_len at step warmup_steps - 1, the warmup's last step.
    # Integer arithmetic: a float ramp like 64.0000001 would round up a whole step_size.
    span = max(1, warmup_steps - 1)
    ramp = min_len * span + (max_len - min_len) * step  # the ramp's length, times span
    if ramp <= min_len * span:
        return min_len  # step 0 stays at min_len even when it is not a multiple of step_size
    rounded_up = -(-ramp // (span * step_size)) * step_size
    return min(max_len, rounded_up)


def measured_lengths(run: RunFacts) -> list[int]:
    """The sequence length each step fed, from the tokens it was measured to feed."""
    samples = run.samples_per_step
    return [tokens // samples for tokens in run.step_tokens]


def length_changes(lengths: list[int]) -> list[list[int]]:
    """[first_step, length] at each change of length (1-based steps)."""
    changes: list[list[int]] = []
    for step, length in enumerate(lengths, start=1):
        if not changes or changes[-1][1] != length:
            changes.append([step, length])
    return changes


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

    @property
    def enabled(self) -> bool:
        return self.warmup_steps > 0

    def cannot_apply(self, model: nn.Module) -> str | None:
        """The shortest length fed, tried once in eval mode: a model that needs its full length
        (a fixed position table it indexes whole, a reshape to max_seq_len) fails here, before
        any run, not at the warmup's first step."""
        length = self.min_seq_len
        if length >= self.max_seq_len:
            return None  # nothing is ever cut
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        ids = torch.zeros(1, length, dtype=torch.int64, device=device)
        # A forward that draws random numbers must not shift the run's stream: forked.
        rng_devices = [device] if device.type == "cuda" else []
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=rng_devices):
                out = model(ids)
        except Exception as exc:  # the team's forward may raise anything
            first = str(exc).strip().splitlines()
            detail = f": {first[0]}" if first else ""
            return f"the model's forward of {length} tokens raised {type(exc).__name__}{detail}"
        if isinstance(out, torch.Tensor) and tuple(out.shape[:2]) != (1, length):
            return (
                f"the model's forward of {length} tokens returned shape {tuple(out.shape)}, "
                f"not (1, {length}, vocab_size)"
            )
        return None

    def length_at(self, step: int) -> int:
        return warmup_length(
            step, self.warmup_steps, self.min_seq_len, self.max_seq_len, self.step_size
        )

    def transform_batch(self, step, inputs, targets):
        if not self.enabled:
            return inputs, targets
        length = self.length_at(step)
        return inputs[:, :length], targets[:, :length]

    def finish(self, run: RunFacts) -> None:
        if not self.enabled:
            return
        tokens, full = run.step_tokens, run.full_step_tokens
        lengths = measured_lengths(run)
        ev = self.evidence
        ev.measurements.update(
            tokens_per_step=tokens,
            full_tokens_per_step=full,
            tokens_fraction=round(sum(tokens) / (full * len(tokens)), 4) if tokens else None,
            schedule=length_changes(lengths),
        )
        if lengths:
            self._judge(lengths, run.max_seq_len)

    def _judge(self, lengths: list[int], max_len: int) -> None:
        """The applied text and findings, from the measured lengths alone."""
        ev = self.evidence
        full_from = next((i for i, n in enumerate(lengths, start=1) if n >= max_len), None)
        reached = (
            f"full length from step {full_from}"
            if full_from is not None
            else f"never full length {max_len}"
        )
        ev.applied.append(
            f"sequence length {lengths[0]} -> {max(lengths)} measured over {len(lengths)} "
            f"steps ({reached})"
        )
        if full_from is None:
            ev.shortcut(
                f"the measured sequence length never reached max_seq_len {max_len} (longest "
                f"{max(lengths)} over {len(lengths)} steps): the model never trained on a "
                "full context"
            )
        elif min(lengths) >= max_len:
            ev.no_effect(f"every step fed the full length {max_len}")
