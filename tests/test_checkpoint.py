"""Atomic checkpoint writes and strict loading."""

from __future__ import annotations

import pytest
import torch

import ryot.train.checkpoint as checkpoint
from ryot.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


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
