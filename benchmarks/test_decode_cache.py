"""KV-cached decoding against recomputing the full forward pass per token: 64 new tokens.

The shipped model (configs/stage3a.yaml's), 32-token prompts, greedy; one prompt, and a batch of
4. Each batch size is one group, so pytest-benchmark's table shows the ratio side by side in one
run; nothing here asserts a time. At batch 1 a cached step on a CPU is bound by reading the 42 MB
of fp32 weights, which one full forward over ~64 tokens also reads only once: that caps the
batch-1 ratio below the batched one (README, Stage 3b). Weights are a seeded init: how long a
forward takes does not depend on what they learned, and unit tests need no trained checkpoint.
"""

from __future__ import annotations

import pytest
import torch

import ryot.optim  # noqa: F401  registers the optimizations' config sections
from ryot.bench.model import ScaledTransformerModel
from ryot.config import load_config
from ryot.serve.generate import Row, generate
from tests.conftest import CONFIGS

NEW_TOKENS = 64
PROMPT_LEN = 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = ScaledTransformerModel(load_config(CONFIGS / "stage3a.yaml").model).eval()
    model.set_attention_impl("sdpa")  # the faster full forward: the baseline is not handicapped
    return model


@pytest.fixture(scope="module", params=[1, 4], ids=lambda b: f"batch{b}")
def prompts(request, model):
    gen = torch.Generator().manual_seed(1)
    shape = (request.param, PROMPT_LEN)
    return torch.randint(0, model.config.vocab_size, shape, generator=gen).tolist()


def recompute_per_token(model, prompts: list[list[int]]) -> list[list[int]]:
    ids = torch.tensor(prompts)
    with torch.inference_mode():
        for _ in range(NEW_TOKENS):
            nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    return ids[:, PROMPT_LEN:].tolist()


def cached(model, prompts: list[list[int]]) -> list[list[int]]:
    return [r.tokens for r in generate(model, [Row(tuple(p), NEW_TOKENS) for p in prompts]).rows]


@pytest.fixture(scope="module")
def reference(model, prompts) -> list[list[int]]:
    """The uncached greedy tokens, once, also the uncached benchmark's warmup."""
    return recompute_per_token(model, prompts)


def test_recompute_full_forward_per_token(benchmark, model, prompts, reference):
    benchmark.group = f"decode 64 new tokens, batch {len(prompts)}"
    # Two rounds: each takes seconds here, and the ratio is far larger than their spread.
    tokens = benchmark.pedantic(recompute_per_token, args=(model, prompts), rounds=2)
    assert tokens == reference


def test_kv_cached_decoding(benchmark, model, prompts, reference):
    benchmark.group = f"decode 64 new tokens, batch {len(prompts)}"
    tokens = benchmark.pedantic(cached, args=(model, prompts), rounds=5, warmup_rounds=1)
    assert tokens == reference, "the cache changed the greedy output"
