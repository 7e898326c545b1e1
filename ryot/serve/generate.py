"""Batched decoding of many prompts at once: the server's only use of the model.

Ryot's ScaledTransformerModel decodes with its KV cache. Rows of different lengths are left-padded
to one length, so every row's next token sits in the same cache slot; each token keeps its own
position (slot minus the row's padding) and padding slots are masked out of attention.

A model of one's own (model.factory) has no cache, no padding mask and may have absolute
positions, so it is never padded: each step runs its full forward over every row's tokens so
far and takes the last position's logits, batching together the rows of one length (rows that
start equal stay equal, one token a step). Either way a row is decoded exactly as it would be
alone, up to float rounding in batched matrix products.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ryot.bench.model import ScaledTransformerModel

PAD_ID = 0  # any valid id: padding slots are masked, so their token never matters


@dataclass(frozen=True)
class Row:
    """One prompt and how to continue it."""

    prompt: tuple[int, ...]
    max_new_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_k: int | None = None
    seed: int | None = None  # sampling only; None draws one


@dataclass
class RowResult:
    tokens: list[int]
    logprobs: list[float]  # the model's log-probability of each token, before temperature/top-k


@dataclass
class BatchResult:
    rows: list[RowResult]
    prefill_s: float
    decode_s: float
    steps: int  # decode steps run for the batch (its longest max_new_tokens)


def _generator(row: Row, device: torch.device) -> torch.Generator | None:
    if row.temperature == 0.0:
        return None
    gen = torch.Generator(device=device)
    if row.seed is None:
        gen.seed()
    else:
        gen.manual_seed(row.seed)
    return gen


def _pick(
    logits: torch.Tensor, rows: list[Row], gens: list[torch.Generator | None]
) -> torch.Tensor:
    """Next token of every row from its last logits (B, vocab): greedy or seeded sampling."""
    chosen = logits.argmax(dim=-1)
    for b, (row, gen) in enumerate(zip(rows, gens, strict=True)):
        if gen is None:
            continue
        # Shifted so the best score is exactly 0, and in float64, before dividing: with any
        # positive temperature, however tiny (1e-40, 5e-324), every quotient is then 0 or
        # negative (down to -inf), never +inf or NaN, so softmax gives the best token(s)
        # probability ~1 and sampling turns greedy smoothly instead of failing. In float32 a
        # temperature under ~1.4e-45 would round to 0 and 0/0 is NaN.
        scores = logits[b].double()
        scores = (scores - scores.max()) / row.temperature
        if row.top_k is not None and row.top_k < scores.numel():
            kth = torch.topk(scores, row.top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = F.softmax(scores, dim=-1)
        chosen[b] = torch.multinomial(probs, 1, generator=gen)[0]
    return chosen


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def uses_kv_cache(model: nn.Module) -> bool:
    """True for Ryot's own model, the one whose cache (new_cache / forward_cached) we know."""
    return isinstance(model, ScaledTransformerModel)


def generate(model: nn.Module, rows: list[Row], max_seq_len: int | None = None) -> BatchResult:
    """Continue every row's prompt by its own max_new_tokens, all rows in one batch.

    max_seq_len is the model's context; None reads it from Ryot's model (another has none).
    """
    assert rows, "generate needs at least one row"
    if max_seq_len is None:
        assert uses_kv_cache(model), "a model of one's own needs its max_seq_len"
        max_seq_len = model.config.max_seq_len
    for row in rows:
        assert row.prompt and len(row.prompt) + row.max_new_tokens <= max_seq_len, (
            f"a prompt of {len(row.prompt)} + {row.max_new_tokens} new tokens exceeds {max_seq_len}"
        )
    if uses_kv_cache(model):
        return _generate_cached(model, rows)
    return _generate_uncached(model, rows)


def _generate_cached(model: ScaledTransformerModel, rows: list[Row]) -> BatchResult:
    device = model.lm_head.weight.device
    max_len = model.config.max_seq_len
    B = len(rows)
    P = max(len(r.prompt) for r in rows)
    steps = max(r.max_new_tokens for r in rows)
    pad = torch.tensor([P - len(r.prompt) for r in rows], device=device)  # (B,)
    ids = torch.full((B, P), PAD_ID, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, P - len(row.prompt) :] = torch.tensor(row.prompt, dtype=torch.long)
    ids = ids.to(device)
    gens = [_generator(r, device) for r in rows]
    # The last token is never fed back: the cache needs P + steps - 1 slots.
    cache = model.new_cache(B, capacity=P + steps - 1)
    cache.key_mask[:, :P] = torch.arange(P, device=device)[None, :] >= pad[:, None]
    out_tokens = torch.empty(B, steps, dtype=torch.long, device=device)
    out_logprobs = torch.empty(B, steps, dtype=torch.float32, device=device)
    lengths = torch.tensor([len(r.prompt) for r in rows], device=device)
    with torch.inference_mode():
        t0 = time.perf_counter()
        positions = (torch.arange(P, device=device)[None, :] - pad[:, None]).clamp(min=0)
        logits = model.forward_cached(ids, cache, positions, last_only=True)[:, -1]
        synchronize(device)
        t1 = time.perf_counter()
        for step in range(steps):
            token = _pick(logits, rows, gens)
            logprobs = F.log_softmax(logits.float(), dim=-1)
            out_tokens[:, step] = token
            out_logprobs[:, step] = logprobs.gather(1, token[:, None])[:, 0]
            if step == steps - 1:
                break
            # A row past its own max_new_tokens still rides along; its position is clamped so
            # it stays inside the position table, and what it produces is dropped below.
            pos = (lengths + step).clamp(max=max_len - 1)[:, None]  # (B, 1)
            logits = model.forward_cached(token[:, None], cache, pos)[:, -1]
        synchronize(device)
        t2 = time.perf_counter()
    tokens, logprobs = out_tokens.tolist(), out_logprobs.tolist()
    results = [
        RowResult(tokens[b][: r.max_new_tokens], logprobs[b][: r.max_new_tokens])
        for b, r in enumerate(rows)
    ]
    return BatchResult(results, prefill_s=t1 - t0, decode_s=t2 - t1, steps=steps)


def _generate_uncached(model: nn.Module, rows: list[Row]) -> BatchResult:
    """Without a cache: a full forward per step over each group of rows of one length."""
    device = next(model.parameters()).device
    steps = max(r.max_new_tokens for r in rows)
    gens = [_generator(r, device) for r in rows]
    # Rows of one prompt length are of one length at every step: each such group is one batch,
    # never padded. A row leaves its group once it has its max_new_tokens.
    by_length: dict[int, list[int]] = {}
    for b, row in enumerate(rows):
        by_length.setdefault(len(row.prompt), []).append(b)
    groups = [
        (members, torch.tensor([rows[b].prompt for b in members], device=device))  # (G, n)
        for members in by_length.values()
    ]
    out_tokens = torch.zeros(len(rows), steps, dtype=torch.long, device=device)
    out_logprobs = torch.zeros(len(rows), steps, dtype=torch.float32, device=device)
    with torch.inference_mode():
        t0 = t1 = time.perf_counter()
        for step in range(steps):
            going = []
            for members, ids in groups:
                logits = model(ids)[:, -1]  # (G, vocab): the last position's
                token = _pick(logits, [rows[b] for b in members], [gens[b] for b in members])
                logprobs = F.log_softmax(logits.float(), dim=-1)
                index = torch.tensor(members, device=device)
                out_tokens[index, step] = token
                out_logprobs[index, step] = logprobs.gather(1, token[:, None])[:, 0]
                keep = [i for i, b in enumerate(members) if rows[b].max_new_tokens > step + 1]
                if keep:
                    ids = torch.cat([ids, token[:, None]], dim=1)[torch.tensor(keep, device=device)]
                    going.append(([members[i] for i in keep], ids))
            groups = going
            if step == 0:  # the prompts' forward: what the cached path calls its prefill
                synchronize(device)
                t1 = time.perf_counter()
        synchronize(device)
        t2 = time.perf_counter()
    tokens, logprobs = out_tokens.tolist(), out_logprobs.tolist()
    results = [
        RowResult(tokens[b][: r.max_new_tokens], logprobs[b][: r.max_new_tokens])
        for b, r in enumerate(rows)
    ]
    return BatchResult(results, prefill_s=t1 - t0, decode_s=t2 - t1, steps=steps)
