"""Tests for ryot.model: shape, size, causality, attention impls, loss and token dropping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ryot.bench.model import ATTENTION_IMPLS, ScaledTransformerModel, lm_loss
from ryot.config import ModelConfig

SMALL = ModelConfig(
    vocab_size=50, embed_dim=32, num_heads=4, num_layers=3, ff_dim=64, max_seq_len=16, dropout=0.0
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run ~100x faster on one intra-op thread than on contended several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def expected_parameters(c: ModelConfig) -> int:
    """Hand count: embedding, per block (2 LayerNorms, qkv, proj, up, down), final LN, head."""
    C, F, V = c.embed_dim, c.ff_dim, c.vocab_size
    layer_norm = 2 * C
    attention = (C * 3 * C + 3 * C) + (C * C + C)
    feed_forward = (C * F + F) + (F * C + C)
    block = 2 * layer_norm + attention + feed_forward
    return V * C + c.num_layers * block + layer_norm + (C * V + V)


def make_model(config: ModelConfig = SMALL, seed: int = 0) -> ScaledTransformerModel:
    torch.manual_seed(seed)
    return ScaledTransformerModel(config)


def tokens(batch: int, length: int, vocab: int = SMALL.vocab_size, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g)


# ---------------------------------------------------------------- shape and size


@pytest.mark.parametrize("length", [1, 7, SMALL.max_seq_len])
def test_output_shape(length: int):
    model = make_model().eval()
    logits = model(tokens(3, length))
    assert logits.shape == (3, length, SMALL.vocab_size)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_count_parameters_matches_hand_count():
    model = make_model()
    assert model.count_parameters() == expected_parameters(SMALL)
    assert model.count_parameters() == sum(p.numel() for p in model.parameters())


def test_count_parameters_ignores_frozen_parameters():
    model = make_model()
    model.token_embedding.weight.requires_grad_(False)
    frozen = SMALL.vocab_size * SMALL.embed_dim
    assert model.count_parameters() == expected_parameters(SMALL) - frozen


def test_positions_are_not_parameters():
    model = make_model()
    names = {name for name, _ in model.named_parameters()}
    assert not any("positions" in name for name in names)
    assert model.positions.shape == (SMALL.max_seq_len, SMALL.embed_dim)


def test_seed_model_has_about_10_5m_parameters():
    config = ModelConfig()
    model = make_model(config)
    n = model.count_parameters()
    assert n == expected_parameters(config) == 10_511_360
    assert 10e6 < n < 11e6


def test_get_config_rebuilds_same_architecture():
    model = make_model()
    assert model.get_config() == {
        "vocab_size": 50,
        "embed_dim": 32,
        "num_heads": 4,
        "num_layers": 3,
        "ff_dim": 64,
        "max_seq_len": 16,
        "dropout": 0.0,
        "factory": "",  # Ryot's own model: no team factory
        "factory_kwargs": {},
    }
    rebuilt = ScaledTransformerModel(ModelConfig(**model.get_config()))
    assert rebuilt.config == model.config
    original = {k: v.shape for k, v in model.state_dict().items()}
    again = {k: v.shape for k, v in rebuilt.state_dict().items()}
    assert list(again) == list(original)
    assert again == original
    # The rebuilt model accepts the original's weights and then computes the same thing.
    rebuilt.load_state_dict(model.state_dict())
    x = tokens(2, 9)
    torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x), rtol=0, atol=0)


# ---------------------------------------------------------------- attention


@pytest.mark.parametrize("impl", ATTENTION_IMPLS)
def test_causality(impl: str):
    model = make_model().eval()
    model.set_attention_impl(impl)
    T = SMALL.max_seq_len
    x = tokens(2, T)
    with torch.no_grad():
        base = model(x)
        for t in range(T):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1 + t) % SMALL.vocab_size
            out = model(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
            # The test can see a change: position t itself depends on token t.
            assert not torch.allclose(out[:, t], base[:, t])


def test_eager_and_sdpa_agree():
    model = make_model().eval()
    x = tokens(4, SMALL.max_seq_len)
    with torch.no_grad():
        assert model.attention_impl == "eager"
        eager = model(x)
        model.set_attention_impl("sdpa")
        assert model.attention_impl == "sdpa"
        sdpa = model(x)
    torch.testing.assert_close(sdpa, eager, rtol=1e-5, atol=1e-5)


def test_eager_and_sdpa_gradients_agree():
    x = tokens(2, 12)
    grads = {}
    for impl in ATTENTION_IMPLS:
        model = make_model().train()  # dropout is 0.0, so training mode is deterministic
        model.set_attention_impl(impl)
        lm_loss(model(x[:, :-1]), x[:, 1:]).backward()
        grads[impl] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, grad in grads["eager"].items():
        torch.testing.assert_close(grads["sdpa"][name], grad, rtol=1e-4, atol=1e-5)


def test_set_attention_impl_sets_every_block():
    model = make_model()
    model.set_attention_impl("sdpa")
    assert [b.attn.impl for b in model.blocks] == ["sdpa"] * SMALL.num_layers
    model.set_attention_impl("eager")
    assert [b.attn.impl for b in model.blocks] == ["eager"] * SMALL.num_layers


@pytest.mark.parametrize("impl", ["flash", "SDPA", "", "math"])
def test_set_attention_impl_rejects_unknown(impl: str):
    model = make_model()
    with pytest.raises(ValueError, match="attention impl"):
        model.set_attention_impl(impl)
    assert model.attention_impl == "eager"


def test_sequence_longer_than_max_seq_len():
    model = make_model().eval()
    model(tokens(1, SMALL.max_seq_len))  # exactly max_seq_len is fine
    too_long = SMALL.max_seq_len + 1
    with pytest.raises(AssertionError, match=rf"length {too_long}\b"):
        model(tokens(1, too_long))


def test_embed_dim_must_divide_into_heads():
    config = ModelConfig(**{**SMALL.__dict__, "embed_dim": 30, "num_heads": 4})
    with pytest.raises(AssertionError, match="heads"):
        ScaledTransformerModel(config)


def test_eval_is_deterministic_and_dropout_only_trains():
    config = ModelConfig(**{**SMALL.__dict__, "dropout": 0.5})
    model = make_model(config)
    x = tokens(2, 10)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        model.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------- loss


@pytest.mark.parametrize("vocab", [2, 50, 2048])
def test_lm_loss_of_uniform_logits_is_ln_vocab(vocab: int):
    targets = tokens(3, 5, vocab=vocab)
    for fill in (0.0, 7.5):
        logits = torch.full((3, 5, vocab), fill)
        assert lm_loss(logits, targets).item() == pytest.approx(math.log(vocab), rel=1e-6)


def test_lm_loss_is_float32_for_low_precision_logits():
    logits = torch.zeros(2, 4, 10, dtype=torch.bfloat16)
    loss = lm_loss(logits, tokens(2, 4, vocab=10))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(math.log(10), rel=1e-6)


def test_lm_loss_of_a_confident_correct_model_is_near_zero():
    targets = tokens(2, 6, vocab=10)
    logits = torch.nn.functional.one_hot(targets, 10).float() * 100.0
    assert lm_loss(logits, targets).item() < 1e-6


def test_untrained_model_loss_is_near_ln_vocab():
    model = make_model().eval()
    x = tokens(8, SMALL.max_seq_len)
    with torch.no_grad():
        loss = lm_loss(model(x[:, :-1]), x[:, 1:]).item()
    assert abs(loss - math.log(SMALL.vocab_size)) < 1.5


def test_every_parameter_gets_a_gradient():
    model = make_model().train()
    x = tokens(2, 10)
    lm_loss(model(x[:, :-1]), x[:, 1:]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------- token dropper


class RecordingDropper:
    """Runs every middle block unchanged and records which layers it was asked about and ran."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.ran: list[int] = []

    def applies_to(self, layer: int, num_layers: int) -> bool:
        self.asked.append((layer, num_layers))
        return 0 < layer < num_layers - 1

    def __call__(self, block: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
        self.ran.append(layer)
        return block(x)


def test_token_dropper_is_used_in_training_only():
    model = make_model()
    x = tokens(2, 8)
    with torch.no_grad():
        model.train()
        plain = model(x)
        dropper = RecordingDropper()
        model.token_dropper = dropper
        keys = list(model.state_dict())
        out = model(x)
    n = SMALL.num_layers
    assert dropper.asked == [(i, n) for i in range(n)]
    assert dropper.ran == [1]  # only the middle layer of three
    torch.testing.assert_close(out, plain, rtol=0, atol=0)  # the dropper ran the block as is
    assert list(model.state_dict()) == keys  # a plain attribute: no new state

    dropper.asked.clear()
    dropper.ran.clear()
    model.eval()
    with torch.no_grad():
        model(x)
    assert dropper.asked == []
    assert dropper.ran == []


def test_token_dropper_output_is_what_the_model_uses():
    class Zeroing(RecordingDropper):
        def __call__(self, block: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
            super().__call__(block, x, layer)
            return torch.zeros_like(x)

    model = make_model().train()
    x = tokens(2, 8)
    with torch.no_grad():
        plain = model(x)
        model.token_dropper = Zeroing()
        dropped = model(x)
        model.eval()
        evaluated = model(x)
    assert model.token_dropper.ran == [1]
    assert not torch.allclose(dropped, plain)
    torch.testing.assert_close(evaluated, plain, rtol=0, atol=0)
