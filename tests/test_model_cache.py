"""The model's KV-cached inference path equals its full forward pass."""

from __future__ import annotations

import pytest
import torch

from tests.serve_support import smoke_model


@pytest.fixture(scope="module")
def model():
    return smoke_model(seed=3)[1]


def _tokens(model, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=gen)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_prefill_then_one_token_at_a_time_equals_forward(model, impl):
    model.set_attention_impl(impl)
    idx = _tokens(model, 3, model.config.max_seq_len)
    with torch.inference_mode():
        full = model(idx)
        cache = model.new_cache(3)
        parts = [model.forward_cached(idx[:, :11], cache)]
        parts += [model.forward_cached(idx[:, t : t + 1], cache) for t in range(11, idx.size(1))]
    model.set_attention_impl("eager")
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)
    assert cache.length == idx.size(1)


def test_last_only_returns_the_last_positions_logits(model):
    idx = _tokens(model, 2, 9)
    with torch.inference_mode():
        every = model.forward_cached(idx, model.new_cache(2))
        last = model.forward_cached(idx, model.new_cache(2), last_only=True)
    assert last.shape == (2, 1, model.config.vocab_size)
    torch.testing.assert_close(last[:, 0], every[:, -1])


def test_left_padded_row_equals_the_row_alone(model):
    """Padding slots are masked and positions follow the row, not the slot."""
    short, long = _tokens(model, 1, 5, seed=1)[0], _tokens(model, 1, 12, seed=2)[0]
    pad = 12 - 5
    idx = torch.stack([torch.cat([torch.zeros(pad, dtype=torch.long), short]), long])
    positions = torch.stack([(torch.arange(12) - pad).clamp(min=0), torch.arange(12)])
    with torch.inference_mode():
        cache = model.new_cache(2, capacity=13)
        cache.key_mask[0, :pad] = False
        batched = model.forward_cached(idx, cache, positions)
        nxt = torch.tensor([[7], [9]])
        step = model.forward_cached(nxt, cache, torch.tensor([[5], [12]]))
        alone = model(torch.cat([short, torch.tensor([7])])[None])
        alone_long = model(torch.cat([long, torch.tensor([9])])[None])
    assert torch.isfinite(batched).all(), "a padding query attending nothing went NaN"
    torch.testing.assert_close(batched[0, pad:], alone[0, :5], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(step[0, 0], alone[0, 5], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(step[1, 0], alone_long[0, 12], atol=1e-5, rtol=1e-4)


def test_cache_path_changes_no_parameter_and_needs_eval_mode(model):
    names = [name for name, _ in model.named_parameters()]
    assert not any("cache" in name for name in names)
    model.train()
    try:
        with pytest.raises(AssertionError, match="inference"):
            model.forward_cached(_tokens(model, 1, 2), model.new_cache(1))
    finally:
        model.eval()


def test_cache_refuses_more_tokens_than_it_holds(model):
    with torch.inference_mode(), pytest.raises(AssertionError, match="slots"):
        model.forward_cached(_tokens(model, 1, 6), model.new_cache(1, capacity=5))
