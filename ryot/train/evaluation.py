"""Validation losses, measured the same way in every arm: full length, eval mode, fp32 matmuls,
on the uncompiled model, off the training clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

EVAL_BATCH_SIZE = 32


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


@torch.no_grad()
def token_losses(model: torch.nn.Module, data: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Each token's validation loss (rows, T) in float64: full length, eval mode, fp32
    matmuls (TF32 off, whatever the stack switched on). Give it the uncompiled model."""
    was_training = model.training
    model.eval()
    rows = []
    with exact_fp32_matmuls():
        for chunk in data.split(EVAL_BATCH_SIZE):
            chunk = chunk.to(device)
            logits = model(chunk[:, :-1]).float()  # (B, T, V)
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), chunk[:, 1:], reduction="none"
            )  # (B, T)
            rows.append(losses.double().cpu())
    model.train(was_training)
    return torch.cat(rows)


def mean_and_per_position(losses: torch.Tensor) -> tuple[float, list[float]]:
    """The mean loss over every token, and the mean at each position (see token_losses)."""
    per_position = losses.mean(dim=0)
    return float(per_position.mean()), per_position.tolist()


def evaluate(
    model: torch.nn.Module, data: torch.Tensor, device: torch.device
) -> tuple[float, list[float]]:
    """Validation loss of `data`: the mean over every token, and at each position."""
    return mean_and_per_position(token_losses(model, data, device))
