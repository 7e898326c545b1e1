"""A small nanoGPT-style causal LM: the example a team copies to have Ryot judge its own model.

Point a config at a factory and Ryot builds, probes and trains that model instead of its own:

    model:
      factory: examples.nanogpt:build
      factory_kwargs: {n_layer: 4, n_head: 4, n_embd: 128, dropout: 0.0, bias: false}
      vocab_size: 256
      max_seq_len: 128

The factory is called as `build(vocab_size=model.vocab_size, max_seq_len=model.max_seq_len,
**model.factory_kwargs)` and must return an nn.Module that meets this protocol, which
ryot.bench.factory checks before any run:

- `forward(idx)`: int64 ids (B, T) -> logits (B, T, vocab_size) for every position, not only
  the last one (nanoGPT's inference shape): the loss is taken at every position;
- causal: the logits at position t depend on tokens 0..t only;
- any T <= max_seq_len: sequence-length warmup trains on shorter rows first;
- the blocks as a ModuleList of (B, T, C) -> (B, T, C) modules at `transformer.h`: token
  dropping runs some of them on a subset of the tokens;
- a boolean `flash` on each attention module: the kernel optimizer switches it on to use
  F.scaled_dot_product_attention; False is the explicit masked softmax, the reference.

A model without the last two still trains; the optimization that needs them says it could not
apply, rather than silently doing nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    max_seq_len: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False  # biases in Linear and LayerNorm: False is a little faster and as good
    flash: bool = False


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, (
            f"n_embd = {config.n_embd} must divide into n_head = {config.n_head} heads"
        )
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # The kernel optimizer's switch; False keeps the explicit computation it is checked
        # against. The mask is rebuilt identically, so it is not saved with the weights.
        self.flash = config.flash
        mask = torch.ones(config.max_seq_len, config.max_seq_len, dtype=torch.bool).tril()
        self.register_buffer("mask", mask.view(1, 1, *mask.shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.flash:
            dropout = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
            att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm residual block: (B, T, C) -> (B, T, C), each token's row on its own except in
    attention, so token dropping may run it on a subset of the tokens."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        # torch >= 2.1 has LayerNorm(bias=False); no hand-written norm is needed for it.
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.max_seq_len, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying, as GPT-2: one matrix reads tokens in and writes them out (V * C fewer
        # parameters, the largest matrix of a small model).
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2: each residual projection scaled down by sqrt(2 * n_layer), so the residual
        # stream's variance does not grow with depth (two projections add to it per block).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> next-token logits (B, T, vocab_size) at every position."""
        B, T = idx.size()
        assert T <= self.config.max_seq_len, (
            f"Cannot forward sequence of length {T}, max_seq_len is {self.config.max_seq_len}"
        )
        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)  # (B, T, C)
        return self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab_size)


def build(
    vocab_size: int,
    max_seq_len: int,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.0,
    bias: bool = False,
    flash: bool = False,
) -> GPT:
    """The factory `model.factory: examples.nanogpt:build` names."""
    return GPT(GPTConfig(vocab_size, max_seq_len, n_layer, n_head, n_embd, dropout, bias, flash))
