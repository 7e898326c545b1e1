"""SemanticCompressor's config section, `optimizations.semantic_compressor`."""

from __future__ import annotations

from dataclasses import dataclass

from ryot.config import checked, choice, fraction_open


@dataclass(frozen=True)
class SemanticCompressorConfig:
    ratio: float = checked(0.0, fraction_open())  # 0: off
    score: str = checked("random", choice("random", "norm"))
