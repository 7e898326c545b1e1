"""A servable run folder in milliseconds: a seeded smoke-sized model, no training.

The serve tests need a checkpoint and a comparison.json of the shape `ryot stage3a` writes (a
committed example's, schema 3.0, which serving reads through the upgrade); what the weights
learned does not matter to them, so none of them pays for a training run. TINY_GPT's run serves
the test-only model of one's own (tests/workloads/tiny_gpt.py, through model.factory).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

import ryot.optim  # noqa: F401  registers the optimizations' config sections
from ryot.bench.model import ScaledTransformerModel
from ryot.bench.workload import build_model
from ryot.config import Config, load_config
from ryot.train.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
TINY_GPT = ROOT / "tests" / "workloads" / "tiny_gpt.yaml"
EXAMPLE = ROOT / "reports" / "examples" / "cpu-2core-xeon-amx-bf16" / "comparison.json"


def smoke_model(seed: int = 0) -> tuple[Config, ScaledTransformerModel]:
    config = load_config(SMOKE)
    torch.manual_seed(seed)
    return config, ScaledTransformerModel(config.model).eval()


def seeded_model(config_path: Path = SMOKE, seed: int = 0) -> tuple[Config, nn.Module]:
    """The config's model, Ryot's or its factory's, seeded, in eval mode."""
    config = load_config(config_path)
    torch.manual_seed(seed)
    return config, build_model(config.model).eval()


def make_run_dir(
    folder: Path, status: str = "GO", arm: str = "optimized", config_path: Path = SMOKE
) -> Path:
    """folder/comparison.json with `status` and folder/checkpoints/ARM.pt of the config's model
    (smoke.yaml's by default); returns folder."""
    config, model = seeded_model(config_path)
    folder.mkdir(parents=True, exist_ok=True)
    comparison = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    comparison["verdict"]["status"] = status
    comparison["comparison"].update(speedup_percent=31.5, time_to_target_speedup_percent=27.0)
    (folder / "comparison.json").write_text(json.dumps(comparison), encoding="utf-8")
    state = {
        "arm": arm,
        "model": model.state_dict(),
        "optimizer": {},
        "rng": {"torch": torch.get_rng_state()},
        "config": config.to_dict(),
        "epoch": 0,
        "step": 0,
    }
    save_checkpoint(state, folder / "checkpoints" / f"{arm}.pt")
    return folder
