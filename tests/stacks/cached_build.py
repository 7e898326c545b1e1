"""A stack whose constructor "builds an extension" into the torch extensions cache, as
torch.utils.cpp_extension.load does, and records whether it found it there already."""

from __future__ import annotations

import os
from pathlib import Path

from ryot.optim.base import Optimization

ARTIFACT = "ryot_test_extension.so"


def cache_folder() -> Path:
    """Where torch.utils.cpp_extension builds: TORCH_EXTENSIONS_DIR, else ~/.cache's."""
    named = os.environ.get("TORCH_EXTENSIONS_DIR")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "torch_extensions"


class BuildsAnExtension(Optimization):
    name = "builds_an_extension"

    def __init__(self, device):
        super().__init__(device)
        built = cache_folder() / ARTIFACT
        self.evidence.measurements["cache_warm"] = built.exists()
        self.evidence.measurements["cache_folder"] = str(built.parent)
        built.parent.mkdir(parents=True, exist_ok=True)
        built.write_bytes(b"compiled")

    @property
    def enabled(self) -> bool:
        return True


def build(config, arm, device):
    return [BuildsAnExtension(device)]
