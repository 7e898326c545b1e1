"""Seeded synthetic token streams from a sparse Markov chain, with a known loss floor."""

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MarkovSource:
    """A first-order Markov chain over token ids, stored sparsely as K successors per token."""

    successors: torch.Tensor  # (V, K) int64: the K successor ids of each token, distinct per row
    probs: torch.Tensor  # (V, K) float64: their transition probabilities, rows sum to 1
    stationary: torch.Tensor  # (V,) float64: the chain's stationary distribution

    @property
    def vocab_size(self) -> int:
        """Number of token ids V."""
        return self.successors.shape[0]

    def entropy_rate(self) -> float:
        """Exact entropy rate of the chain in nats per token: sum_i pi_i * H(P_i)."""
        # CE(P_i, q) = H(P_i) + KL(P_i || q) >= H(P_i): the loss floor, hit by a model that knows P
        row_entropy = -torch.special.xlogy(self.probs, self.probs).sum(dim=1)  # (V,), 0 log 0 = 0
        return float((self.stationary * row_entropy).sum())

    def sample(self, num_sequences: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """Draw (num_sequences, length) int64 token ids, the first one from `stationary`."""
        _check_positive("num_sequences", num_sequences)
        _check_positive("length", length)
        u = torch.rand(length, num_sequences, generator=generator, dtype=torch.float64)  # (L, N)
        tokens = torch.empty(num_sequences, length, dtype=torch.int64)
        # starting from pi makes every position stationary, so the floor holds at every position
        tokens[:, 0] = torch.searchsorted(_cdf(self.stationary), u[0], right=True)
        # Inverse CDF: pick the first k with u < cdf[k], so zero-probability successors are never
        # hit. A hand-rolled binary search on (N,) vectors, because torch.searchsorted and (N, K)
        # gathers fan out to worker threads whose wakeups cost 100x the work on a busy CPU.
        k = self.probs.shape[1]
        flat_cdf = _cdf(self.probs).reshape(-1)  # (V*K,) row i at [i*K, i*K + K)
        flat_succ = self.successors.reshape(-1)  # (V*K,)
        for t in range(1, length):
            lo = tokens[:, t - 1] * k  # (N,) search [lo, hi] within the previous token's row
            hi = lo + (k - 1)
            for _ in range((k - 1).bit_length()):
                mid = (lo + hi) // 2
                go_right = flat_cdf[mid] <= u[t]
                lo = torch.where(go_right, mid + 1, lo)
                hi = torch.where(go_right, hi, mid)
            tokens[:, t] = flat_succ[lo]
        return tokens


def stationary_distribution(
    successors: torch.Tensor, probs: torch.Tensor, tol: float = 1e-12, max_iters: int = 10_000
) -> torch.Tensor:
    """Stationary distribution (V,) float64 of a sparse chain, by power iteration."""
    vocab_size = successors.shape[0]
    flat_succ = successors.reshape(-1)  # (V*K,)
    probs = probs.to(torch.float64)
    # uniform start is already the fixed point of doubly stochastic chains, e.g. a periodic cycle
    pi = torch.full((vocab_size,), 1.0 / vocab_size, dtype=torch.float64)
    for _ in range(max_iters):
        # pi_next[j] = sum_i pi[i] * P[i, j], scattered from the sparse rows: no dense V x V matrix
        mass = (pi[:, None] * probs).reshape(-1)  # (V*K,)
        nxt = torch.zeros(vocab_size, dtype=torch.float64).scatter_add_(0, flat_succ, mass)
        nxt /= nxt.sum()  # stop rounding drift from accumulating in the total mass
        change = float((nxt - pi).abs().sum())
        pi = nxt
        if change < tol:
            return pi
    # a nearly deterministic chain (very large zipf_exponent) can mix too slowly to get here
    raise RuntimeError(
        f"stationary distribution did not converge in {max_iters} iterations "
        f"(last L1 change {change:.3e})"
    )


def build_markov_source(
    vocab_size: int, branching: int, zipf_exponent: float, seed: int
) -> MarkovSource:
    """Random chain: each token gets `branching` successors with randomly ranked Zipf weights."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    if not 1 <= branching <= vocab_size:
        raise ValueError(f"branching must be in [1, vocab_size={vocab_size}], got {branching}")
    if not (zipf_exponent >= 0 and math.isfinite(zipf_exponent)):
        raise ValueError(f"zipf_exponent must be finite and >= 0, got {zipf_exponent}")
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(vocab_size)
    # Forcing i -> i+1 (mod V) makes the chain irreducible: every token reaches every other one.
    # Forcing the self loop 0 -> 0 (a cycle of length 1) makes it aperiodic, so pi is unique and
    # power iteration converges. With branching == 1 there is no room for the loop: the chain is
    # the pure cycle, irreducible with uniform pi (rate 0), which power iteration starts from.
    scores = torch.rand(vocab_size, vocab_size, generator=gen)  # (V, V) random candidate priority
    scores[rows, (rows + 1) % vocab_size] = 2.0  # above any rand() value, so always kept
    if branching >= 2:
        scores[0, 0] = 2.0
    successors = scores.topk(branching, dim=1).indices  # (V, K), distinct per row
    # p_k ∝ 1/k^s over ranks k = 1..K; ranks shuffled per row so forced successors aren't favoured
    weights = torch.arange(1, branching + 1, dtype=torch.float64).pow(-zipf_exponent)  # (K,)
    weights /= weights.sum()
    ranks = torch.rand(vocab_size, branching, generator=gen).argsort(dim=1)  # (V, K) permutations
    probs = weights[ranks]  # (V, K), all > 0 so the forced edges really exist
    return MarkovSource(successors, probs, stationary_distribution(successors, probs))


def make_splits(
    vocab_size: int,
    seq_len: int,
    num_train: int,
    num_val: int,
    branching: int,
    zipf_exponent: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, MarkovSource]:
    """Train (num_train, seq_len + 1) and val (num_val, seq_len + 1) int64 ids from one source."""
    _check_positive("seq_len", seq_len)
    _check_positive("num_train", num_train)
    _check_positive("num_val", num_val)
    source = build_markov_source(vocab_size, branching, zipf_exponent, seed)
    # seq_len + 1 tokens per row: inputs row[:-1] and targets row[1:] both have seq_len positions.
    # One generator per split: val is an independent draw and does not move when num_train does.
    train = source.sample(num_train, seq_len + 1, torch.Generator().manual_seed(seed + 1))
    val = source.sample(num_val, seq_len + 1, torch.Generator().manual_seed(seed + 2))
    return train, val, source


def _cdf(probs: torch.Tensor) -> torch.Tensor:
    cdf = probs.to(torch.float64).cumsum(dim=-1)
    # last entry exactly 1 (x / x), not 1 - eps from rounding, so u < 1 always lands in the row;
    # equal entries stay equal, so a trailing zero-probability entry is still never picked
    return cdf / cdf[..., -1:]


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
