"""Atomic checkpoint writes and strict loading."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import ryot.train.checkpoint as checkpoint
from ryot.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ryot.train.results import CurvePoint


def _state(step: int) -> dict:
    return {
        "arm": "baseline", "model": {"w": torch.full((3,), float(step))}, "optimizer": {},
        "rng": {}, "config": {}, "epoch": step, "step": step,
    }  # fmt: skip


def test_round_trip(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(_state(3), path)
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.full((3,), 3.0))


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(_state(1), path)

    def dies_half_way(obj, handle):
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left behind


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable checkpoint"),
        (b"garbage bytes", "not a readable checkpoint"),
    ],
)
def test_unreadable_checkpoint_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_foreign_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_a_checkpoint_of_only_the_required_keys_loads_typed(tmp_path):
    path = tmp_path / "old.pt"
    save_checkpoint(_state(2), path)
    state = checkpoint.load_state(path)
    assert (state.arm, state.epoch, state.step) == ("baseline", 2, 2)
    assert state.history is None and state.model_config is None  # servable, not resumable


def test_an_older_history_takes_the_defaults_and_round_trips(tmp_path):
    # a history from before the stalls and the curve were measured
    old = {
        "step_times": [0.5, 0.25],
        "step_losses": [3.0, 2.5],
        "step_tokens": [64, 64],
        "epochs": [],
        "setup_time_s": 1.0,
    }
    history = checkpoint.History.from_dict(old)
    assert history.step_stalls == [0.0, 0.0] and history.curve == []
    assert history.initial_val_loss is None and history.setup_stall_s == 0.0
    history.curve.append(CurvePoint(0, 1.0, 4.0))
    path = tmp_path / "ck.pt"
    save_checkpoint({**_state(1), "history": history.to_dict()}, path)
    raw = load_checkpoint(path)["history"]
    assert raw["curve"] == [{"step": 0, "clock_s": 1.0, "val_loss": 4.0}]  # the file's form
    assert checkpoint.load_state(path).history == history


def test_resume_problem_is_one_rule_with_the_seed_left_to_the_caller(smoke_config):
    other_seed = replace(smoke_config, training=replace(smoke_config.training, seed=99))
    problem = checkpoint.resume_problem
    assert problem("baseline", smoke_config, "baseline", smoke_config) is None
    assert problem("baseline", smoke_config, "optimized", smoke_config) == (
        "checkpoint is of arm 'baseline', not 'optimized'"
    )
    assert problem("baseline", other_seed, "baseline", smoke_config, any_seed=True) is None
    assert problem("baseline", other_seed, "baseline", smoke_config) == (
        "checkpoint was trained with a different training config"
    )
    longer = replace(smoke_config, model=replace(smoke_config.model, num_layers=5))
    assert problem("baseline", longer, "baseline", smoke_config, any_seed=True) == (
        "checkpoint was trained with a different model config"
    )
