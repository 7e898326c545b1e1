"""The attention modules the kernel optimizer can switch, on Ryot's model or a team's.

A model Ryot does not own keeps its attention in its own code, so the switch works only where
the module says how it is chosen: Ryot's CausalSelfAttention (`impl`: "sdpa" or "eager") and
nanoGPT's convention, a boolean `flash` attribute (True: F.scaled_dot_product_attention, False:
an explicit masked softmax). Anything else is left as the model wrote it, and the evidence says
so. The probe's reference undoes the switch here too, so both sides agree on what it means.
"""

from __future__ import annotations

from torch import nn

from ryot.bench.model import CausalSelfAttention

RECOGNISED = (
    "Ryot's CausalSelfAttention, or a module with a boolean `flash` attribute as in nanoGPT"
)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every attention module of `model` whose kernel this package can choose, in order."""
    return [
        m
        for m in model.modules()
        if isinstance(m, CausalSelfAttention) or isinstance(getattr(m, "flash", None), bool)
    ]


def uses_sdpa(module: nn.Module) -> bool:
    if isinstance(module, CausalSelfAttention):
        return module.impl == "sdpa"
    return module.flash


def set_sdpa(model: nn.Module, on: bool) -> int:
    """Switch every recognised attention module to SDPA (on) or to its explicit reference
    computation (off); returns how many modules changed."""
    changed = 0
    for module in attention_modules(model):
        if uses_sdpa(module) == on:
            continue
        if isinstance(module, CausalSelfAttention):
            module.impl = "sdpa" if on else "eager"
        else:
            module.flash = on
        changed += 1
    return changed
