"""What `ryot serve` loads from a run folder: a run's own config snapshot, old keys included, and
the model it names, Ryot's or a factory's."""

from __future__ import annotations

import pytest
import torch

from ryot.serve.served_run import ServeError, load_model
from ryot.train.checkpoint import load_checkpoint, save_checkpoint
from tests.serve_support import TINY_GPT, make_run_dir, seeded_model
from tests.workloads.tiny_gpt import TinyGPT


def test_a_run_made_before_a_key_was_retired_still_serves(tmp_path):
    run = make_run_dir(tmp_path / "run")
    path = run / "checkpoints" / "optimized.pt"
    state = load_checkpoint(path)
    state["config"]["criteria"]["target_slack"] = 0.025  # retired with comparison schema 3.0
    save_checkpoint(state, path)
    served = load_model(run, "optimized", torch.device("cpu"))
    assert served.config.model.vocab_size == 64


def test_a_factory_model_is_rebuilt_from_the_snapshot_and_served_without_a_cache(tmp_path):
    run = make_run_dir(tmp_path / "run", config_path=TINY_GPT)
    served = load_model(run, "optimized", torch.device("cpu"))
    assert isinstance(served.model, TinyGPT) and not served.model.training
    assert served.name == "tests.workloads.tiny_gpt:build" and served.kv_cache is False
    assert len(served.model.blocks) == 4  # factory_kwargs.layers
    _, seeded = seeded_model(TINY_GPT)
    for name, tensor in seeded.state_dict().items():
        assert torch.equal(served.model.state_dict()[name], tensor), name
    assert served.num_parameters == sum(p.numel() for p in seeded.parameters())


def test_ryots_model_is_served_with_its_cache(tmp_path):
    served = load_model(make_run_dir(tmp_path / "run"), "optimized", torch.device("cpu"))
    assert served.name == "ScaledTransformerModel" and served.kv_cache is True
    assert served.num_parameters == served.model.count_parameters()


@pytest.mark.parametrize(
    "factory, why",
    [
        ("tests.workloads.no_such_module:build", "cannot import 'tests.workloads.no_such_module'"),
        ("tests.workloads.tiny_gpt:nope", "has no attribute 'nope'"),
        ("tests.workloads.tiny_gpt:raises", "RuntimeError: no weights for you"),
    ],
)
def test_a_factory_that_cannot_be_rebuilt_is_one_line_naming_checkpoint_and_factory(
    tmp_path, factory, why
):
    run = make_run_dir(tmp_path / "run", config_path=TINY_GPT)
    path = run / "checkpoints" / "optimized.pt"
    state = load_checkpoint(path)
    state["config"]["model"]["factory"] = factory
    state["config"]["model"]["factory_kwargs"] = {}  # the broken factories take none
    save_checkpoint(state, path)
    with pytest.raises(ServeError) as caught:
        load_model(run, "optimized", torch.device("cpu"))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert f"model.factory = {factory}" in message and why in message
