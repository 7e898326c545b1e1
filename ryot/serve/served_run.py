"""Load what `ryot serve` serves: a run folder's verdict (the gate) and one arm's checkpoint.

Every problem is a ServeError with one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ryot.bench.workload import build_model, model_record
from ryot.comparison.model import Comparison
from ryot.config import Config, ConfigError, config_from_dict
from ryot.serve.generate import uses_kv_cache
from ryot.train.checkpoint import CheckpointError, load_checkpoint
from ryot.train.trainer import count_parameters

SERVE_ARMS = ("optimized", "baseline")


class ServeError(ValueError):
    """The run folder cannot be served: one line, exit 2."""


@dataclass(frozen=True)
class RunVerdict:
    status: str  # GO, INVESTIGATE, DEBUG, ...
    speedup_percent: float | None  # end to end, equal steps
    matched_loss_speedup_percent: float | None  # at equal quality


@dataclass
class ServedModel:
    model: nn.Module  # Ryot's ScaledTransformerModel or the run's model.factory's
    config: Config
    arm: str
    checkpoint: Path
    sha256: str
    num_parameters: int
    device: torch.device
    name: str  # ScaledTransformerModel, or the factory's MODULE:FUNCTION
    kv_cache: bool  # decoded with a KV cache (Ryot's model) or a full forward per new token


def _finite_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_verdict(run_dir: Path) -> RunVerdict:
    """The run's verdict and speedups from RUN_DIR/comparison.json, read as the typed
    comparison (any readable schema: ryot.comparison upgrades an older one)."""
    path = run_dir / "comparison.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServeError(f"{path}: not found (is {run_dir} a `ryot stage3a` run folder?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ServeError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    try:
        c = Comparison.from_dict(data)
    except ValueError as exc:
        raise ServeError(f"{path}: {exc}") from None
    status = c.verdict.status if c.verdict else None
    if status is None:
        raise ServeError(f"{path}: no verdict.status (a single-arm run is never judged)")
    seed = c.comparison
    return RunVerdict(
        status,
        _finite_or_none(seed and seed.speedup_percent),
        _finite_or_none(seed and seed.matched_loss_speedup_percent),
    )


def gate(verdict: RunVerdict, run_dir: Path, allow_no_go: bool) -> None:
    """Refuse a run whose verdict is not GO, unless told to serve it anyway."""
    if verdict.status != "GO" and not allow_no_go:
        raise ServeError(
            f"{run_dir}: verdict is {verdict.status}, not GO: refusing to serve it "
            "(--allow-no-go serves it anyway)"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(run_dir: Path, arm: str, device: torch.device) -> ServedModel:
    """RUN_DIR/checkpoints/ARM.pt rebuilt from its own config snapshot, in eval mode."""
    path = run_dir / "checkpoints" / f"{arm}.pt"
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise ServeError(str(exc)) from None
    try:
        # A snapshot, not a user's file: a run made before a key was retired still serves.
        config = config_from_dict(state["config"], f"{path} (config snapshot)", snapshot=True)
    except ConfigError as exc:
        raise ServeError(str(exc)) from None
    model = _rebuild(config, path)
    weights = state["model"]
    if not isinstance(weights, dict):
        raise ServeError(f"{path}: model weights are not a state dict")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError, TypeError) as exc:
        # torch's first line is a generic heading; the second names the first bad key.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:200]
        raise ServeError(f"{path}: weights do not fit the snapshot's model ({detail})") from None
    model.to(device).eval()
    return ServedModel(
        model,
        config,
        arm,
        path,
        sha256_of(path),
        count_parameters(model),
        device,
        name=model_record(config.model)["name"],
        kv_cache=uses_kv_cache(model),
    )


def _rebuild(config: Config, path: Path) -> nn.Module:
    """The snapshot's model, freshly built: Ryot's, or the factory's imported and called again."""
    if not config.model.is_factory:
        return build_model(config.model)
    spec = config.model.factory
    try:
        return build_model(config.model)
    except (ValueError, ImportError) as exc:  # ryot.bench.factory.FactoryError is a ValueError
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if spec not in detail:
            detail = f"model.factory = {spec}: {detail}"
        raise ServeError(f"{path}: cannot rebuild the snapshot's model: {detail}") from None
