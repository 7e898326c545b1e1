"""Batched KV-cached decoding: equal to one prompt at a time and to the uncached model."""

from __future__ import annotations

import pytest
import torch

from ryot.serve.generate import Row, generate
from tests.serve_support import smoke_model


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
