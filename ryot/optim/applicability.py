"""Whether every optimization the config turns on can apply to the model, asked before any run.

A model Ryot does not own (`model.factory`) may lack what an optimization needs: no block list
to drop tokens in, a forward that takes only its full length. Training it anyway would judge a
stack in which that optimization silently did nothing, so the caller turns the answer into a
usage error (exit 2) naming the setting that asked for it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ryot.config import Config
from ryot.optim.registry import OPTIMIZED, build_stack, registrations


def inapplicable(config: Config, model: nn.Module, device: torch.device) -> str | None:
    """The first enabled optimization of the optimized arm that cannot apply to `model`, as one
    line ('optimizations.semantic_compressor.ratio = 0.25 cannot apply: ...'), else None.

    Each optimization is asked on its own deep copy, so `model` is left as it was; the stack is
    closed before returning, so no process-wide switch outlives the check.
    """
    by_name = {r.name: r for r in registrations()}
    stack = build_stack(config, OPTIMIZED, device)
    try:
        for opt in stack:
            if not opt.enabled:
                continue
            why = opt.cannot_apply(copy.deepcopy(model))
            if why is not None:
                registration = by_name.get(opt.name)
                where = registration.switch_text(config) if registration else opt.name
                return f"{where} cannot apply: {why}"
    finally:
        for opt in stack:
            opt.close()
    return None
