"""The optimizations: the registry (ryot.optim.registry) and the built-ins, each in its own folder
with its method card (README.md) and its registration. Importing this package registers them.

Registration order is the ablation arms' order in the plan and the report; the optimized arm
applies them in that order too, except that the kernel optimizer comes last (`applied_last`):
torch.compile (level 3) must trace the model with the token dropper installed.
"""

from __future__ import annotations

from ryot.optim import registry
from ryot.optim.base import Evidence, Optimization
from ryot.optim.compression.registration import REGISTRATION as COMPRESSION
from ryot.optim.kernel.registration import REGISTRATION as KERNEL
from ryot.optim.scaling.registration import REGISTRATION as SCALING

BUILTINS = (KERNEL, COMPRESSION, SCALING)
for _builtin in BUILTINS:
    registry.register(_builtin)

# The default `--stack`: every arm's stack from the registry (kept as ryot.optim:build_stack).
build_stack = registry.build_stack

__all__ = ["BUILTINS", "Evidence", "Optimization", "build_stack", "registry"]
