"""What `ryot serve` loads from a run folder: a run's own config snapshot, old keys included."""

from __future__ import annotations

import torch

from ryot.serve.served_run import load_model
from ryot.train.checkpoint import load_checkpoint, save_checkpoint
from tests.serve_support import make_run_dir


def test_a_run_made_before_a_key_was_retired_still_serves(tmp_path):
    run = make_run_dir(tmp_path / "run")
    path = run / "checkpoints" / "optimized.pt"
    state = load_checkpoint(path)
    state["config"]["criteria"]["target_slack"] = 0.025  # retired with comparison schema 3.0
    save_checkpoint(state, path)
    served = load_model(run, "optimized", torch.device("cpu"))
    assert served.config.model.vocab_size == 64
