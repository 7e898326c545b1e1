"""ScaledTransformerModel: a decoder-only causal language model (pre-norm, GELU, sinusoidal)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ryot.config import ModelConfig

ATTENTION_IMPLS = ("eager", "sdpa")


class LayerTokenDropper(Protocol):
    """Runs a block on a subset of tokens during training (see ryot.optim.compression)."""

    def __call__(self, block: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor: ...

    def applies_to(self, layer: int, num_layers: int) -> bool: ...


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        assert config.embed_dim % config.num_heads == 0, "embed_dim must divide into heads"
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        # The kernel optimizer switches this; "eager" is the explicit reference computation.
        self.impl = "eager"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, nh, T, hs)
        q = q.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)
        k = k.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)
        v = v.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)
        dropout = self.dropout if self.training else 0.0
        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, T)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~causal, float("-inf"))
            att = F.dropout(F.softmax(att, dim=-1), p=dropout, training=self.training)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))

    def forward_cached(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int, mask
    ) -> torch.Tensor:
        """Attend from T new tokens to the cache slots [0, start + T), writing theirs first."""
        B, T, C = x.shape
        hs = C // self.num_heads
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.num_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        keys[:, :, start : start + T] = k.view(B, T, self.num_heads, hs).transpose(1, 2)
        values[:, :, start : start + T] = v.view(B, T, self.num_heads, hs).transpose(1, 2)
        # mask (B or 1, 1, T, start + T): causal, padding excluded; same softmax(qk/sqrt(hs))v.
        y = F.scaled_dot_product_attention(
            q, keys[:, :, : start + T], values[:, :, : start + T], attn_mask=mask
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.up = nn.Linear(config.embed_dim, config.ff_dim)
        self.down = nn.Linear(config.ff_dim, config.embed_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.embed_dim)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.embed_dim)
        self.ff = FeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ff(self.ln2(x))

    def forward_cached(self, x, keys, values, start: int, mask) -> torch.Tensor:
        x = x + self.attn.forward_cached(self.ln1(x), keys, values, start, mask)
        return x + self.ff(self.ln2(x))


class KVCache:
    """Every layer's keys and values for the tokens fed so far: incremental decoding.

    Slots [0, length) are filled; `key_mask` (B, capacity) says which slots hold real tokens
    (False for left padding), so rows of different lengths decode together.
    """

    def __init__(self, config: ModelConfig, batch: int, capacity: int, device=None, dtype=None):
        hs = config.embed_dim // config.num_heads
        shape = (batch, config.num_heads, capacity, hs)  # (B, nh, capacity, hs)
        self.keys = [
            torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)
        ]
        self.values = [
            torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)
        ]
        self.key_mask = torch.ones(batch, capacity, dtype=torch.bool, device=device)
        self.capacity = capacity
        self.length = 0


def sinusoidal_positions(max_len: int, dim: int) -> torch.Tensor:
    """Fixed sine/cosine position table (max_len, dim), as in 'Attention Is All You Need'."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class ScaledTransformerModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        # A buffer, not a parameter: fixed positions, rebuilt identically, so not saved.
        self.register_buffer(
            "positions",
            sinusoidal_positions(config.max_seq_len, config.embed_dim),
            persistent=False,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.embed_dim)
        self.lm_head = nn.Linear(config.embed_dim, config.vocab_size)
        # Set by the semantic compressor; a plain attribute so state_dict keys never change.
        self.token_dropper: LayerTokenDropper | None = None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.xavier_uniform_(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def attention_impl(self) -> str:
        return self.blocks[0].attn.impl

    def set_attention_impl(self, impl: str) -> None:
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        for block in self.blocks:
            block.attn.impl = impl

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> next-token logits (B, T, vocab)."""
        B, T = idx.shape
        assert T <= self.config.max_seq_len, (
            f"Cannot forward sequence of length {T}, max_seq_len is {self.config.max_seq_len}"
        )
        # Embeddings times sqrt(C), as in 'Attention Is All You Need': Xavier-initialized rows
        # have norm ~0.6 at C=512 against ~16 for a sinusoidal position, which would otherwise
        # drown which token is where (a model then learns token frequencies and nothing more).
        tokens = self.token_embedding(idx) * math.sqrt(self.config.embed_dim)
        x = self.dropout(tokens + self.positions[:T])  # (B, T, C)
        dropper = self.token_dropper if self.training else None
        for i, block in enumerate(self.blocks):
            if dropper is not None and dropper.applies_to(i, len(self.blocks)):
                x = dropper(block, x, i)
            else:
                x = block(x)
        return self.lm_head(self.ln_f(x))

    def new_cache(self, batch: int, capacity: int | None = None) -> KVCache:
        """An empty KV cache for `batch` rows of up to `capacity` (default max_seq_len) slots."""
        weight = self.lm_head.weight
        capacity = self.config.max_seq_len if capacity is None else capacity
        return KVCache(self.config, batch, capacity, weight.device, weight.dtype)

    def forward_cached(
        self,
        idx: torch.Tensor,
        cache: KVCache,
        positions: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Token ids (B, T) after the cache's tokens -> logits (B, T or 1, vocab); fills the cache.

        Equals forward() on the whole sequence so far (eval mode, no token dropping), computing
        only the T new positions. `positions` (B, T) are each token's own position, which differs
        from its cache slot in a left-padded row; the default is the slot.
        """
        assert not self.training, "forward_cached is for inference: call model.eval() first"
        B, T = idx.shape
        start, end = cache.length, cache.length + T
        assert end <= cache.capacity, f"KV cache holds {cache.capacity} slots, {end} needed"
        slots = torch.arange(start, end, device=idx.device)
        if positions is None:
            positions = slots.expand(B, T)
        assert int(positions.max()) < self.config.max_seq_len, (
            f"position {int(positions.max())} is past max_seq_len {self.config.max_seq_len}"
        )
        tokens = self.token_embedding(idx) * math.sqrt(self.config.embed_dim)  # as in forward
        x = tokens + self.positions[positions]  # (B, T, C)
        keys = torch.arange(end, device=idx.device)
        causal = keys[None, :] <= slots[:, None]  # (T, end)
        # A padding slot is never attended to, except by itself: a query with no key at all
        # would make softmax NaN, and NaN * 0 still poisons the rows that skip it.
        own = keys[None, :] == slots[:, None]
        mask = ((causal & cache.key_mask[:, None, :end]) | own).unsqueeze(1)  # (B, 1, T, end)
        for i, block in enumerate(self.blocks):
            x = block.forward_cached(x, cache.keys[i], cache.values[i], start, mask)
        cache.length = end
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.ln_f(x))

    def count_parameters(self) -> int:
        """True number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments: ScaledTransformerModel(ModelConfig(**get_config()))."""
        return dataclasses.asdict(self.config)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy in nats over every position."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
