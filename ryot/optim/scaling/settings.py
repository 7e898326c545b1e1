"""InferenceScalingEngine's config section, `optimizations.inference_scaling`."""

from __future__ import annotations

from dataclasses import dataclass

from ryot.config import Config, checked, non_negative, positive


@dataclass(frozen=True)
class InferenceScalingConfig:
    warmup_steps: int = checked(0, non_negative())  # 0: off
    min_seq_len: int = checked(32, positive())
    step_size: int = checked(16, positive())

    def conflict(self, config: Config) -> str | None:
        """The loader's rule between this section and the model's (see ryot.config)."""
        max_len = config.model.max_seq_len
        if self.warmup_steps and self.min_seq_len > max_len:
            return f"min_seq_len = {self.min_seq_len} exceeds model.max_seq_len = {max_len}"
        return None
