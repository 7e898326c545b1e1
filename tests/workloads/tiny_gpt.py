"""A test-only causal LM that is not Ryot's: its own attention, blocks and learned positions.

Ryot judges it through `model.factory: tests.workloads.tiny_gpt:build` like any team's model.
It follows the documented block protocol (a `blocks` ModuleList of (B, T, C) -> (B, T, C)
modules) but has no attention module Ryot recognises, so the kernel optimizer's attention
switch must say it could not apply while its other parts (fused AdamW, bf16) still do.
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.heads, C // self.heads).transpose(1, 2)
            for t in self.qkv(x).split(C, dim=2)
        )
        scores = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab_size: int, max_seq_len: int, width: int, heads: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(max_seq_len, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.embed(idx) + self.position(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def build(vocab_size: int, max_seq_len: int, width: int = 32, heads: int = 2, layers: int = 3):
    return TinyGPT(vocab_size, max_seq_len, width, heads, layers)


# Broken factories, one per way a team's model can be wrong (tests/test_factory.py).
def raises(vocab_size: int, max_seq_len: int):
    raise RuntimeError("no weights for you")


def not_a_module(vocab_size: int, max_seq_len: int):
    return "a model"


class _LastOnly(TinyGPT):
    def forward(self, idx):  # nanoGPT's inference shape: logits of the last position only
        return super().forward(idx)[:, -1:, :]


def last_position_only(vocab_size: int, max_seq_len: int):
    return _LastOnly(vocab_size, max_seq_len, 32, 2, 3)


class _Peeking(TinyGPT):
    def forward(self, idx):  # every position sees the sequence's mean embedding: not causal
        x = self.embed(idx)
        x = x + x.mean(dim=1, keepdim=True)
        return self.head(self.norm(x))


def non_causal(vocab_size: int, max_seq_len: int):
    return _Peeking(vocab_size, max_seq_len, 32, 2, 3)


class _FullLengthOnly(TinyGPT):
    def forward(self, idx):
        if idx.shape[1] != self.position.num_embeddings:
            raise ValueError(f"expected {self.position.num_embeddings} tokens")
        return super().forward(idx)


def full_length_only(vocab_size: int, max_seq_len: int):
    return _FullLengthOnly(vocab_size, max_seq_len, 32, 2, 3)


def no_blocks(vocab_size: int, max_seq_len: int):
    """A causal LM without the block protocol: token dropping cannot apply."""
    return nn.Sequential(nn.Embedding(vocab_size, 16), nn.Linear(16, vocab_size))


__all__ = ["TinyGPT", "build"]
