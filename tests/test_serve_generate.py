"""Batched decoding, KV-cached (Ryot's model) or not (a model of one's own): equal to one
prompt at a time and to the naive full forward per token."""

from __future__ import annotations

import pytest
import torch

from ryot.serve.generate import Row, _generate_uncached, generate, uses_kv_cache
from tests.serve_support import TINY_GPT, seeded_model, smoke_model


@pytest.fixture(scope="module")
def model():
    return smoke_model(seed=5)[1]


def _prompt(n: int, seed: int, vocab: int = 64) -> tuple[int, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(0, vocab, (n,), generator=gen).tolist())


def test_batched_rows_of_different_lengths_equal_each_row_alone(model):
    rows = [Row(_prompt(n, seed=n), k) for n, k in [(3, 10), (12, 5), (1, 20), (7, 25), (30, 2)]]
    batched = generate(model, rows)
    for row, got in zip(rows, batched.rows, strict=True):
        alone = generate(model, [row]).rows[0]
        assert got.tokens == alone.tokens
        assert len(got.tokens) == row.max_new_tokens
        torch.testing.assert_close(got.logprobs, alone.logprobs, atol=1e-4, rtol=0)
    assert batched.steps == 25


def test_greedy_equals_recomputing_the_full_forward_per_token(model):
    row = Row(_prompt(6, seed=1), 20)
    ids = torch.tensor([row.prompt])
    logprobs = []
    with torch.inference_mode():
        for _ in range(row.max_new_tokens):
            logits = model(ids)[:, -1]
            nxt = logits.argmax(-1, keepdim=True)
            logprobs.append(float(torch.log_softmax(logits, -1)[0, nxt[0, 0]]))
            ids = torch.cat([ids, nxt], dim=1)
    got = generate(model, [row]).rows[0]
    assert got.tokens == ids[0, len(row.prompt) :].tolist()
    torch.testing.assert_close(got.logprobs, logprobs, atol=1e-4, rtol=0)


def test_same_seed_same_sample_other_seed_other_sample(model):
    row = Row(_prompt(4, seed=2), 24, temperature=1.5, seed=11)
    first = generate(model, [row]).rows[0].tokens
    assert generate(model, [row]).rows[0].tokens == first
    # in a batch with another row, the seeded row still draws the same stream
    assert generate(model, [Row(_prompt(9, 3), 5), row]).rows[1].tokens == first
    other = Row(row.prompt, 24, temperature=1.5, seed=12)
    assert generate(model, [other]).rows[0].tokens != first
    greedy = generate(model, [Row(row.prompt, 24)]).rows[0].tokens
    assert first != greedy, "temperature 1.5 sampled exactly the greedy path: no sampling?"


def test_top_k_one_is_greedy_whatever_the_temperature(model):
    prompt = _prompt(5, seed=4)
    greedy = generate(model, [Row(prompt, 16)]).rows[0].tokens
    assert generate(model, [Row(prompt, 16, temperature=3.0, top_k=1, seed=1)]).rows[0].tokens == (
        greedy
    )


def test_a_row_may_fill_the_whole_context(model):
    n = model.config.max_seq_len
    got = generate(model, [Row(_prompt(n - 3, 6), 3), Row(_prompt(1, 7), n - 1)])
    assert [len(r.tokens) for r in got.rows] == [3, n - 1]
    with pytest.raises(AssertionError, match="exceeds"):
        generate(model, [Row(_prompt(n - 2, 6), 3)])


@pytest.mark.parametrize("temperature", [1e-30, 1e-40, 1e-300, 5e-324])
def test_a_tiny_temperature_samples_the_greedy_path_without_failing(model, temperature):
    """Below float32's range (1e-40) and down to the smallest double (5e-324) sampling is
    greedy in the limit: the best token has probability ~1, and nothing overflows to NaN."""
    prompt = _prompt(5, seed=8)
    greedy = generate(model, [Row(prompt, 20)]).rows[0]
    rows = [Row(prompt, 20, temperature=temperature, seed=s) for s in range(3)]
    rows.append(Row(prompt, 20, temperature=temperature, top_k=5, seed=9))
    for got in generate(model, rows).rows:
        assert got.tokens == greedy.tokens
        torch.testing.assert_close(got.logprobs, greedy.logprobs, atol=1e-4, rtol=0)


# A model of one's own (model.factory): no KV cache, no padding mask, learned absolute positions.
@pytest.fixture(scope="module")
def tiny_gpt():
    return seeded_model(TINY_GPT, seed=5)[1]


def _full_forward_greedy(model, prompt: tuple[int, ...], new: int) -> tuple[list[int], list[float]]:
    """The naive reference: one prompt, the full forward over everything so far per token."""
    ids = torch.tensor([prompt])
    logprobs = []
    with torch.inference_mode():
        for _ in range(new):
            logits = model(ids)[:, -1]
            nxt = logits.argmax(-1, keepdim=True)
            logprobs.append(float(torch.log_softmax(logits, -1)[0, nxt[0, 0]]))
            ids = torch.cat([ids, nxt], dim=1)
    return ids[0, len(prompt) :].tolist(), logprobs


def test_which_model_decodes_with_a_cache(model, tiny_gpt):
    assert uses_kv_cache(model) and not uses_kv_cache(tiny_gpt)
    with pytest.raises(AssertionError, match="needs its max_seq_len"):
        generate(tiny_gpt, [Row((1, 2), 3)])


def test_without_a_cache_greedy_equals_the_naive_full_forward(tiny_gpt):
    row = Row(_prompt(6, seed=1), 20)
    tokens, logprobs = _full_forward_greedy(tiny_gpt, row.prompt, row.max_new_tokens)
    got = generate(tiny_gpt, [row], 32).rows[0]
    assert got.tokens == tokens
    torch.testing.assert_close(got.logprobs, logprobs, atol=1e-4, rtol=0)


def test_without_a_cache_batched_rows_of_any_lengths_equal_each_row_alone(tiny_gpt):
    # two rows share a length (and one leaves that group early), the others are alone in theirs
    shapes = [(3, 10), (12, 5), (1, 20), (3, 25), (30, 2), (7, 1)]
    rows = [Row(_prompt(n, seed=i), k) for i, (n, k) in enumerate(shapes)]
    batched = generate(tiny_gpt, rows, 32)
    assert batched.steps == 25
    for row, got in zip(rows, batched.rows, strict=True):
        alone = generate(tiny_gpt, [row], 32).rows[0]
        tokens, logprobs = _full_forward_greedy(tiny_gpt, row.prompt, row.max_new_tokens)
        assert got.tokens == alone.tokens == tokens
        torch.testing.assert_close(got.logprobs, alone.logprobs, atol=1e-4, rtol=0)
        torch.testing.assert_close(got.logprobs, logprobs, atol=1e-4, rtol=0)


class _Spy(torch.nn.Module):
    """Records every ids tensor the model is given."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, ids):
        self.seen.append(ids.clone())
        return self.inner(ids)


def test_without_a_cache_a_row_is_never_padded(tiny_gpt):
    """Every row the model sees is one request's prompt plus its own tokens so far."""
    rows = [Row(_prompt(n, seed=n), k) for n, k in [(2, 6), (5, 3), (2, 4), (9, 5)]]
    spy = _Spy(tiny_gpt)
    got = generate(spy, rows, 32).rows
    full = [list(r.prompt) + g.tokens for r, g in zip(rows, got, strict=True)]
    for ids in spy.seen:
        for seen in ids.tolist():
            assert any(seen == f[: len(seen)] and len(seen) >= len(r.prompt)
                       for f, r in zip(full, rows, strict=True)), seen  # fmt: skip
    # one forward per step per group of one current length: 4 + 1 + 1 + 5 + ... as they finish
    assert len(spy.seen) == sum(max(r.max_new_tokens for r in rows if len(r.prompt) == n)
                                for n in {len(r.prompt) for r in rows})  # fmt: skip


def test_without_a_cache_seeded_sampling_is_the_same_alone_or_batched(tiny_gpt):
    row = Row(_prompt(4, seed=2), 24, temperature=1.5, seed=11)
    first = generate(tiny_gpt, [row], 32).rows[0].tokens
    assert generate(tiny_gpt, [Row(_prompt(4, 3), 5), row], 32).rows[1].tokens == first
    assert generate(tiny_gpt, [Row(_prompt(9, 3), 5), row], 32).rows[1].tokens == first
    greedy = generate(tiny_gpt, [Row(row.prompt, 24)], 32).rows[0].tokens
    assert first != greedy, "temperature 1.5 sampled exactly the greedy path: no sampling?"
    top1 = Row(row.prompt, 24, temperature=3.0, top_k=1, seed=1)
    assert generate(tiny_gpt, [top1], 32).rows[0].tokens == greedy


def test_without_a_cache_a_row_may_fill_the_whole_context(tiny_gpt):
    got = generate(tiny_gpt, [Row(_prompt(29, 6), 3), Row(_prompt(1, 7), 31)], 32)
    assert [len(r.tokens) for r in got.rows] == [3, 31]
    with pytest.raises(AssertionError, match="exceeds 32"):
        generate(tiny_gpt, [Row(_prompt(30, 6), 3)], 32)


def test_ryots_model_decodes_the_same_with_or_without_its_cache(model):
    rows = [Row(_prompt(n, seed=n), k) for n, k in [(3, 10), (12, 5), (1, 20), (3, 4)]]
    cached, uncached = generate(model, rows), _generate_uncached(model, rows)
    for a, b in zip(cached.rows, uncached.rows, strict=True):
        assert a.tokens == b.tokens
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)
