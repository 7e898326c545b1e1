"""SemanticCompressor: layer-wise token dropping in the middle layers while training.

Each middle layer (the first and the last see every token) runs on the ceil((1 - ratio) * T)
most important tokens only: they are gathered in their original order, the layer runs with
causal attention among them, and its output is scattered back; dropped tokens skip the layer
unchanged. The loss is still taken on every token, and evaluation runs the full model.

Importance score (`score`):
  random  DeepSpeed's Random-LTD: a fresh random subset per layer and step. The default: it is
          unbiased (every token trains every layer in expectation) and, since the choice never
          looks at the tokens, it keeps the model strictly causal.
  norm    the L2 norm of the hidden state. Deterministic, but picking the top-k over the whole
          sequence lets later tokens influence which earlier tokens are kept.

Ryot's model calls the dropper itself (its `token_dropper`); a team's model is met through the
block protocol of ryot.optim.compression.blocks, and one without it is a usage error before any
run (`cannot_apply`), never a silent full-token run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ryot.bench.model import ScaledTransformerModel
from ryot.optim.base import Optimization, RunFacts
from ryot.optim.compression.blocks import (
    MIN_BLOCKS,
    NO_BLOCKS,
    find_blocks,
    wrap_middle_blocks,
)


def kept_count(ratio: float, length: int) -> int:
    return max(1, math.ceil((1.0 - ratio) * length))


def drop_tokens(block: nn.Module, x: torch.Tensor, ratio: float, score: str) -> torch.Tensor:
    """Run `block` on the kept tokens of x (B, T, C); dropped tokens pass through unchanged."""
    B, T, C = x.shape
    keep = kept_count(ratio, T)
    if keep >= T:
        return block(x)
    with torch.no_grad():
        if score == "norm":
            importance = x.float().norm(dim=-1)  # (B, T)
        else:
            importance = torch.rand(B, T, device=x.device)
        idx = importance.topk(keep, dim=1).indices.sort(dim=1).values  # (B, K), in order
    gather_idx = idx.unsqueeze(-1).expand(B, keep, C)
    kept = block(x.gather(1, gather_idx))  # (B, K, C): causal attention among kept tokens
    return x.scatter(1, gather_idx, kept)


class TokenDropper:
    """The model's `token_dropper`: which layers drop tokens, and how."""

    def __init__(self, ratio: float, score: str):
        self.ratio = ratio
        self.score = score
        self.kept_fraction: dict[int, list[float]] = {}

    def applies_to(self, layer: int, num_layers: int) -> bool:
        return 0 < layer < num_layers - 1

    def __call__(self, block: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
        T = x.shape[1]
        self.kept_fraction.setdefault(layer, []).append(kept_count(self.ratio, T) / T)
        return drop_tokens(block, x, self.ratio, self.score)


class SemanticCompressor(Optimization):
    name = "compression"

    def __init__(self, device: torch.device, ratio: float, score: str = "random"):
        self.ratio = ratio
        self.score = score
        super().__init__(device)
        self.evidence.settings = {"ratio": ratio, "score": score}
        self.dropper: TokenDropper | None = None

    @property
    def enabled(self) -> bool:
        return self.ratio > 0

    def cannot_apply(self, model: nn.Module) -> str | None:
        if isinstance(model, ScaledTransformerModel):
            layers = len(model.blocks)
            if layers < MIN_BLOCKS:
                return (
                    f"model.num_layers = {layers}: token dropping needs {MIN_BLOCKS} or more "
                    "layers (the first and the last keep every token)"
                )
            return None
        found = find_blocks(model)
        if found is None:
            return NO_BLOCKS
        where, blocks = found
        if len(blocks) < MIN_BLOCKS:
            return (
                f"{where} holds {len(blocks)} blocks: token dropping needs {MIN_BLOCKS} or more "
                "(the first and the last keep every token)"
            )
        return None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if not self.enabled:
            return model
        if not isinstance(model, ScaledTransformerModel):
            return self._wrap_blocks(model)
        layers = len(model.blocks)
        if layers < MIN_BLOCKS:
            self.evidence.skip("token dropping", f"{layers} layers have no middle layer")
            return model
        self.dropper = TokenDropper(self.ratio, self.score)
        model.token_dropper = self.dropper
        self.evidence.applied.append(
            f"token dropping in layers 1..{layers - 2} of 0..{layers - 1} ({self.score} score)"
        )
        return model

    def _wrap_blocks(self, model: nn.Module) -> nn.Module:
        """A team's model: its middle blocks wrapped in place (ryot.optim.compression.blocks).
        The config check (cannot_apply) rejects a model without them before any run."""
        why = self.cannot_apply(model)
        if why is not None:
            self.evidence.skip("token dropping", why)
            return model
        where, blocks = find_blocks(model)
        self.dropper = TokenDropper(self.ratio, self.score)
        wrap_middle_blocks(blocks, self.dropper)
        layers = len(blocks)
        self.evidence.applied.append(
            f"token dropping in blocks 1..{layers - 2} of 0..{layers - 1} of {where} "
            f"({self.score} score)"
        )
        return model

    def finish(self, run: RunFacts) -> None:
        if not self.enabled:
            return
        # The reference is this arm with every token kept: same attention kernel, same autocast.
        probe = run.probe
        arm, ref = probe.arm(), probe.without_token_dropping()
        ev = self.evidence
        ev.measurements.update(
            flops_per_step=arm.flops,
            reference_flops_per_step=ref.flops,
            flops_ratio=round(arm.flops / ref.flops, 4) if ref.flops else None,
        )
        if self.dropper is not None:
            ev.measurements["kept_fraction_per_layer"] = {
                str(layer): round(sum(v) / len(v), 4)
                for layer, v in sorted(self.dropper.kept_fraction.items())
            }
        if arm.flops >= ref.flops:
            ev.no_effect(
                f"FLOPs per step {arm.flops:,} not below the {ref.flops:,} of this arm without "
                "token dropping"
            )
