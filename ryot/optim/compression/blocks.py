"""The block protocol: where a model Ryot does not own keeps its layers, and the wrapper that
drops tokens in one of them.

Ryot's model calls its `token_dropper` itself. A team's model does not, so token dropping needs
a protocol it can meet without knowing Ryot: a ModuleList of (B, T, C) -> (B, T, C) blocks,
called in order, at `model.blocks` or at nanoGPT's `model.transformer.h`. Each middle block is
replaced in that list by a TokenDroppingBlock, which runs it on the kept tokens while training
and unchanged in eval mode. Parameter names gain a `.block` level; the trainer copies parameters
by the names they had before any optimization touched the model, so its evaluation never sees
the wrapper.
"""

from __future__ import annotations

import torch
from torch import nn

from ryot.bench.model import LayerTokenDropper

BLOCK_PATHS = ("blocks", "transformer.h")
NO_BLOCKS = "the model has no ModuleList of (B, T, C) blocks at model.blocks or model.transformer.h"
MIN_BLOCKS = 3  # the first and the last block keep every token: a middle one must exist


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(where, the blocks) at the first of BLOCK_PATHS that holds a ModuleList, else None."""
    for path in BLOCK_PATHS:
        found: object = model
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, nn.ModuleList):
            return f"model.{path}", found
    return None


class TokenDroppingBlock(nn.Module):
    """One middle block of a team's model: the kept tokens only while training (the dropper
    records the kept fraction), every token in eval mode or once `dropper` is None."""

    def __init__(self, block: nn.Module, dropper: LayerTokenDropper | None, layer: int):
        super().__init__()
        self.block = block
        self.dropper = dropper  # a plain attribute: the block's state_dict keys stay its own
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropper is not None:
            return self.dropper(self.block, x, self.layer)
        return self.block(x)


def wrap_middle_blocks(blocks: nn.ModuleList, dropper: LayerTokenDropper) -> list[int]:
    """Wrap each block the dropper applies to, in place; returns their indices."""
    wrapped = [i for i in range(len(blocks)) if dropper.applies_to(i, len(blocks))]
    for i in wrapped:
        blocks[i] = TokenDroppingBlock(blocks[i], dropper, i)
    return wrapped


def stop_dropping(model: nn.Module) -> None:
    """Every wrapper of `model` runs its block on every token from now on."""
    for module in model.modules():
        if isinstance(module, TokenDroppingBlock):
            module.dropper = None
