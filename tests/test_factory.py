"""ryot.bench.factory: every way a team's model.factory can be wrong is one line naming it, and
the good ones (tests.workloads.tiny_gpt, examples.nanogpt) build, pass the probe and count."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from examples import nanogpt
from ryot.bench import factory
from ryot.bench.factory import FactoryError, build, check_factory, check_model, load_factory
from ryot.config import config_from_dict
from tests.workloads import tiny_gpt

V, L = 256, 128
TINY = "tests.workloads.tiny_gpt"
HERE = "tests.test_factory"


def model_config(spec: str, vocab_size: int = V, max_seq_len: int = L, **kwargs):
    model = {"factory": spec, "vocab_size": vocab_size, "max_seq_len": max_seq_len}
    return config_from_dict(
        {"model": {**model, "factory_kwargs": kwargs} if kwargs else model}
    ).model


def failure(spec: str, lengths=None, **kwargs) -> str:
    """check_factory's one-line message for `spec`."""
    with pytest.raises(FactoryError) as info:
        check_factory(model_config(spec, **kwargs), lengths)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"model.factory = {spec}: ")
    return message[len(f"model.factory = {spec}: ") :]


# Broken factories beyond tiny_gpt's, built on its model.
class _Wrapped(tiny_gpt.TinyGPT):
    def __init__(self, vocab_size, max_seq_len, change):
        super().__init__(vocab_size, max_seq_len, 16, 2, 1)
        self.change = change

    def forward(self, idx):
        return self.change(super().forward(idx), idx)


def nan_logits(vocab_size, max_seq_len):
    return _Wrapped(
        vocab_size, max_seq_len, lambda y, idx: y.index_fill(2, torch.tensor([3]), 0) / 0
    )


def int_logits(vocab_size, max_seq_len):
    return _Wrapped(vocab_size, max_seq_len, lambda y, idx: y.long())


def logits_and_loss(vocab_size, max_seq_len):  # nanoGPT's (logits, loss)
    return _Wrapped(vocab_size, max_seq_len, lambda y, idx: (y, None))


def float_noise(vocab_size, max_seq_len):
    """Causal but for float noise: each position sees every later token, 1e-7 of a logit."""
    return _Wrapped(vocab_size, max_seq_len, lambda y, idx: y + 1e-9 * idx.sum())


def slight_peek(vocab_size, max_seq_len):
    """Sees later tokens by 1e-2 of a logit (the parity of the row's sum): far above noise."""
    return _Wrapped(
        vocab_size, max_seq_len, lambda y, idx: y + 1e-2 * (idx.sum(1) % 2)[:, None, None]
    )


def random_draw(vocab_size, max_seq_len):
    """Draws from the global RNG in every forward (and ignores the draw)."""
    return _Wrapped(vocab_size, max_seq_len, lambda y, idx: y + 0 * torch.rand(()))


def random_forward(vocab_size, max_seq_len):
    """Eval mode's forward is not a function of the ids: dropout left on."""
    return _Wrapped(vocab_size, max_seq_len, lambda y, idx: nn.functional.dropout(y, 0.5, True))


def long_raise(vocab_size, max_seq_len):
    raise RuntimeError("line one\n  line two\n" + "x" * 1000)


NOT_A_FUNCTION = 3


def test_a_missing_module_is_one_line():
    message = failure("no_such_pkg.mod:build")
    assert message == (
        "cannot import 'no_such_pkg.mod' (ModuleNotFoundError: No module named 'no_such_pkg')"
    )


def test_a_module_that_raises_on_import(tmp_path, monkeypatch):
    (tmp_path / "ryot_factory_raises_on_import.py").write_text("1 / 0\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = failure("ryot_factory_raises_on_import:build")
    assert message == (
        "cannot import 'ryot_factory_raises_on_import' (ZeroDivisionError: division by zero)"
    )


def test_a_missing_attribute():
    assert failure(f"{TINY}:nope") == f"module {TINY!r} has no attribute 'nope'"


def test_an_attribute_that_is_not_callable():
    assert failure(f"{HERE}:NOT_A_FUNCTION") == "'NOT_A_FUNCTION' is a int, not a function"


def test_the_factory_raises():
    assert failure(f"{TINY}:raises") == "the factory raised RuntimeError: no weights for you"


def test_a_long_multi_line_raise_is_one_truncated_line():
    message = failure(f"{HERE}:long_raise")
    assert message.startswith("the factory raised RuntimeError: line one line two xxx")
    assert message.endswith("...") and len(message) < 260


def test_factory_kwargs_the_factory_does_not_take():
    message = failure(f"{TINY}:build", depth=3)
    assert message.startswith("cannot take the keywords vocab_size, max_seq_len, depth (TypeError")
    assert "depth" in message


def test_factory_kwargs_may_not_set_the_sizes_the_config_gives():
    model = {"factory": f"{TINY}:build", "factory_kwargs": {"vocab_size": 64}}
    config = config_from_dict({"model": model}).model
    with pytest.raises(FactoryError, match=r"^model\.factory_kwargs\.vocab_size = 64: model\."):
        build(config)


def test_the_factory_returns_something_else():
    assert failure(f"{TINY}:not_a_module") == "returned a str, not a torch.nn.Module"


def test_logits_of_the_last_position_only():
    assert failure(f"{TINY}:last_position_only") == (
        f"forward of int64 ids (2, {L}) returned logits of shape (2, 1, {V}); "
        f"expected (2, {L}, {V})"
    )


def test_a_tuple_is_not_logits():
    assert failure(f"{HERE}:logits_and_loss") == (
        f"forward of int64 ids (2, {L}) returned a tuple, not a tensor of logits"
    )


def test_integer_logits():
    assert failure(f"{HERE}:int_logits") == (
        f"forward of int64 ids (2, {L}) returned logits of dtype torch.int64; "
        "expected a floating dtype"
    )


def test_non_finite_logits():
    assert failure(f"{HERE}:nan_logits").startswith(
        f"forward of int64 ids (2, {L}) returned non-finite logits ("
    )


def test_a_model_that_sees_later_tokens_is_not_causal():
    message = failure(f"{TINY}:non_causal")
    assert re.fullmatch(
        rf"not causal: changing the token at position {L - 1} changed the logits at position 0 "
        r"\(max difference [0-9.e+-]+\)",
        message,
    ), message
    assert failure(f"{HERE}:slight_peek").startswith("not causal: ")


def test_a_forward_that_is_not_a_function_of_the_ids():
    assert re.fullmatch(
        rf"forward of int64 ids \(2, {L}\) is not deterministic in eval mode: the same ids gave "
        r"logits [0-9.e+-]+ apart, so causality cannot be checked",
        failure(f"{HERE}:random_forward"),
    )


def test_float_noise_is_not_a_peek():
    assert check_factory(model_config(f"{HERE}:float_noise")) > 0


def test_a_model_that_takes_only_the_full_length():
    assert check_factory(model_config(f"{TINY}:full_length_only")) > 0
    assert failure(f"{TINY}:full_length_only", lengths=[8]) == (
        f"forward of ids (2, 8) raised ValueError: expected {L} tokens"
    )


def test_the_block_protocol_is_not_the_probe_s_business():
    assert check_factory(model_config(f"{TINY}:no_blocks")) == 2 * V * 16 + V


def test_lengths_beyond_max_seq_len_are_the_caller_s_error():
    with pytest.raises(ValueError, match=rf"^lengths: {L + 1} is not in \[1, model.max_seq_len"):
        check_factory(model_config(f"{TINY}:build"), lengths=[L + 1])


def test_load_factory_returns_the_function():
    assert load_factory(model_config(f"{TINY}:build")) is tiny_gpt.build


def test_tiny_gpt_passes_and_counts_its_parameters():
    W, layers = 24, 2
    config = model_config(f"{TINY}:build", width=W, heads=2, layers=layers)
    per_block = 4 * W + 4 * W * W + (W * 4 * W + 4 * W) + (4 * W * W + W)
    expected = V * W + L * W + layers * per_block + 2 * W + W * V
    assert check_factory(config, lengths=[1, 2, 17, L]) == expected


def test_nanogpt_passes_and_counts_each_tied_weight_once():
    C, layers = 32, 3
    config = model_config("examples.nanogpt:build", n_layer=layers, n_head=4, n_embd=C)
    # wte (tied to lm_head) + wpe + per block (two bias-free norms, c_attn, c_proj, MLP) + ln_f
    expected = V * C + L * C + layers * (2 * C + 12 * C * C) + C
    assert check_factory(config, lengths=[1, 2, 17, L]) == expected
    with_bias = model_config("examples.nanogpt:build", n_layer=layers, n_embd=C, bias=True)
    assert check_factory(with_bias) == expected + layers * (2 * C + 3 * C + C + 4 * C + C) + C


@pytest.mark.parametrize("spec", [f"{TINY}:build", "examples.nanogpt:build"])
def test_the_same_seed_builds_the_same_weights(spec):
    config = model_config(spec)
    torch.manual_seed(7)
    first = build(config).state_dict()
    torch.manual_seed(7)
    again = build(config).state_dict()
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    torch.manual_seed(8)
    other = build(config).state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_nanogpt_flash_and_the_explicit_softmax_agree():
    torch.manual_seed(0)
    explicit = nanogpt.build(V, L, n_layer=2, n_embd=64, flash=False).eval()
    flash = nanogpt.build(V, L, n_layer=2, n_embd=64, flash=True).eval()
    flash.load_state_dict(explicit.state_dict())
    attention = [m for m in flash.modules() if isinstance(getattr(m, "flash", None), bool)]
    assert len(attention) == 2 and all(m.flash for m in attention)
    ids = torch.randint(0, V, (3, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(flash(ids), explicit(ids), atol=1e-5, rtol=0)


def test_nanogpt_ties_the_head_to_the_token_embedding():
    model = nanogpt.build(V, L)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert isinstance(model.transformer.h, nn.ModuleList) and len(model.transformer.h) == 4
    assert "transformer.wte.weight" in model.state_dict()


def test_nanogpt_refuses_a_row_longer_than_max_seq_len():
    model = nanogpt.build(V, 16, n_layer=1, n_embd=32)
    with pytest.raises(AssertionError, match="Cannot forward sequence of length 17"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_the_probe_restores_modes_and_the_global_rng():
    config = model_config(f"{HERE}:random_draw")
    model = build(config).train()
    model.blocks[0].eval()  # a mixed state comes back as it was, not as model.train()
    torch.manual_seed(3)
    state = torch.get_rng_state()
    check_model(model, config)
    assert torch.equal(torch.get_rng_state(), state)
    assert (
        model.training and not model.blocks[0].training and model.blocks[0].attn.training is False
    )
    assert model.norm.training


def test_every_message_names_model_factory():
    assert factory.FactoryError.__mro__[1] is ValueError
    with pytest.raises(FactoryError, match=r"^model\.factory = x:y: cannot import 'x'"):
        load_factory(model_config("x:y"))
