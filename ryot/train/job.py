"""What the parent tells a worker to train: one JobSpec, written as JOB.json beside the run's
result file (see ryot.experiment.runners.SubprocessRunner and ryot.train.worker)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_STACK_FACTORY = "ryot.optim:build_stack"
_PATHS = ("result", "checkpoint", "resume")


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One run of one arm, as the worker process receives it."""

    label: str  # "run 3", say: how the worker's console names the run
    arm: str
    # The run's Config.to_dict(): the worker builds the Config itself, so a bad one is reported
    # from the run that was given it, under `config_source`.
    config: dict[str, Any]
    config_source: str = "<job>"
    device: str  # "cpu" or "cuda"
    result: Path  # where the worker writes RESULT.json
    checkpoint: Path | None = None  # where to save checkpoints; None: save none
    checkpoint_every: int | None = None  # epochs between checkpoints (None: every epoch)
    resume: Path | None = None  # the checkpoint to continue from
    stop_after_epoch: int | None = None  # stop early (the A/A run)
    stack_factory: str = DEFAULT_STACK_FACTORY  # "module:function" that builds the stack

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        for key in _PATHS:
            data[key] = str(data[key]) if data[key] else None
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """A JOB.json's spec; keys it does not give take the defaults above."""
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in _PATHS:
            if key in data:
                data[key] = Path(data[key]) if data[key] else None
        return cls(**data)
