"""A seeded synthetic language whose Bayes-optimal loss is known exactly, position by position.

The generative process (`TopicChainSource`), for a vocabulary of V tokens:

1. Popularity. Every token j gets a global weight w_j = 1 / rank_j ** zipf_exponent, with the
   ranks a seeded permutation: the token frequencies come out skewed like a natural language's.
2. Short range. Every token i gets `branching` (K) successors S_i, drawn without replacement
   with weights w_j ** SUCCESSOR_SKEW, never i itself (but for the forced 0 -> 0 below). The next
   token can only be one of the current token's successors: the previous token says a lot.
3. Long range. The vocabulary is split at random into `num_topics` (M) topics. Each sequence
   draws one topic z, uniformly, and keeps it to the end; tokens of topic z are `topic_boost`
   (beta) times more likely wherever they are successors. No single token reveals z, but every
   token is evidence for it, so only a long context pins it down.

   P_z(j | i) = w_j * beta^[topic(j) = z] / sum over S_i of the same,   j in S_i
   x_0 ~ pi_z (the stationary distribution of P_z), then x_t ~ P_z(. | x_{t-1}).

Starting from pi_z makes every position identically distributed given the topic, so a
position's loss differs from another's only through how much context precedes it.

The floor. The best any model can do at position t is the Bayes predictive distribution
p(x_t | x_<t) = sum_z p(z | x_<t) P_z(x_t | x_{t-1}), where the topic posterior
p(z | x_<t) ∝ p(z) pi_z(x_0) prod_{s<t} P_z(x_s | x_{s-1}) is computed exactly by a forward pass
over M topics. `bayes_log_probs` does that for every position of the validation split: the
mean of -log p is that split's exact Bayes-optimal loss (the floor), per position and overall.
The reference every run reports beside it, the unigram loss, is the split's loss under the true
token marginal sum_z p(z) pi_z: what token frequencies alone buy, with no context at all.

Why it is learnable in the Stage 3a budget: the unigram (a few nats below ln V) is learned in a
few dozen steps; the successor sets of the frequent tokens, which carry most of the mass, are
seen hundreds of times in 1600 samples; the topic is a bag-of-words signal that attention can
average over the whole prefix. docs/tuning.md records how much of each a 100-step run learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

# How strongly successor sets favour popular tokens (0: uniform sets). At 0.3 the token
# frequencies are Zipf-like (unigram loss ~5 nats at V=2048) while successor sets still differ
# enough from token to token that the previous token is worth ~3 nats: see docs/tuning.md.
SUCCESSOR_SKEW = 0.3


@dataclass(frozen=True)
class TopicChainSource:
    """The language: shared successor sets, per-topic transition probabilities."""

    successors: torch.Tensor  # (V, K) int64: the K successor ids of each token, distinct per row
    probs: torch.Tensor  # (M, V, K) float64: P_z(successors[i, k] | i), rows sum to 1
    stationary: torch.Tensor  # (M, V) float64: pi_z, the stationary distribution of topic z
    topic_of: torch.Tensor  # (V,) int64: the topic each token belongs to

    @property
    def vocab_size(self) -> int:
        return self.successors.shape[0]

    @property
    def num_topics(self) -> int:
        return self.probs.shape[0]

    def marginal(self) -> torch.Tensor:
        """(V,) float64: the token distribution at any position, topics averaged out."""
        return self.stationary.mean(dim=0)

    def sample(self, num_sequences: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """Draw (num_sequences, length) int64 token ids, one topic per sequence."""
        _check_positive("num_sequences", num_sequences)
        _check_positive("length", length)
        V, K = self.successors.shape
        topics = torch.randint(self.num_topics, (num_sequences,), generator=generator)
        u = torch.rand(length, num_sequences, generator=generator, dtype=torch.float64)  # (L, N)
        tokens = torch.empty(num_sequences, length, dtype=torch.int64)
        start_cdf = _cdf(self.stationary)[topics]  # (N, V)
        first = torch.searchsorted(start_cdf, u[0].unsqueeze(1), right=True).squeeze(1)
        tokens[:, 0] = first.clamp_(max=V - 1)
        # Inverse CDF: the first k with u < cdf[k]. A hand-rolled binary search on (N,) vectors,
        # because torch.searchsorted and (N, K) gathers fan out to worker threads whose wakeups
        # cost 100x the work on a busy CPU.
        flat_cdf = _cdf(self.probs).reshape(-1)  # (M*V*K,): row (z, i) at [(z*V + i)*K, +K)
        flat_succ = self.successors.reshape(-1)  # (V*K,)
        row_base = topics * V  # (N,)
        for t in range(1, length):
            prev = tokens[:, t - 1]
            lo = (row_base + prev) * K
            hi = lo + (K - 1)
            for _ in range((K - 1).bit_length()):
                mid = (lo + hi) // 2
                go_right = flat_cdf[mid] <= u[t]
                lo = torch.where(go_right, mid + 1, lo)
                hi = torch.where(go_right, hi, mid)
            tokens[:, t] = flat_succ[prev * K + (lo - (row_base + prev) * K)]
        return tokens

    def bayes_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L-1) float64: log p(x_t | x_<t) of the Bayes-optimal predictor, t = 1 .. L-1."""
        N, L = tokens.shape
        log_probs = self.probs.log()  # (M, V, K)
        # log p(z | x_0), unnormalized: uniform topic prior times pi_z(x_0)
        log_post = self.stationary[:, tokens[:, 0]].log().T  # (N, M)
        out = torch.empty(N, L - 1, dtype=torch.float64)
        for t in range(1, L):
            prev, cur = tokens[:, t - 1], tokens[:, t]
            k = self._successor_index(prev, cur)  # (N,)
            step = log_probs[:, prev, k].T  # (N, M): log P_z(x_t | x_{t-1}) for every topic
            norm = log_post - log_post.logsumexp(dim=1, keepdim=True)
            out[:, t - 1] = (norm + step).logsumexp(dim=1)
            log_post = log_post + step
        return out

    def unigram_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L-1) float64: log q(x_t) under the true token marginal, t = 1 .. L-1."""
        return self.marginal().log()[tokens[:, 1:]]

    def _successor_index(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        match = self.successors[prev] == cur.unsqueeze(1)  # (N, K)
        if not bool(match.any(dim=1).all()):
            raise ValueError("tokens contain a transition this source cannot produce")
        return match.to(torch.int8).argmax(dim=1)


def stationary_distribution(
    successors: torch.Tensor, probs: torch.Tensor, tol: float = 1e-13, max_iters: int = 20_000
) -> torch.Tensor:
    """Stationary distribution (V,) float64 of one sparse chain (probs (V, K)), by power
    iteration."""
    vocab_size = successors.shape[0]
    flat_succ = successors.reshape(-1)  # (V*K,)
    probs = probs.to(torch.float64)
    # uniform start is already the fixed point of doubly stochastic chains, e.g. a periodic cycle
    pi = torch.full((vocab_size,), 1.0 / vocab_size, dtype=torch.float64)
    change = math.inf
    for _ in range(max_iters):
        # pi_next[j] = sum_i pi[i] * P[i, j], scattered from the sparse rows: no dense V x V matrix
        mass = (pi[:, None] * probs).reshape(-1)  # (V*K,)
        nxt = torch.zeros(vocab_size, dtype=torch.float64).scatter_add_(0, flat_succ, mass)
        # The lazy chain (I + P) / 2 has the same stationary distribution, and its eigenvalues
        # lie in [0, 1]: a nearly periodic chain (eigenvalue near -1) converges as fast as any.
        nxt = 0.5 * (pi + nxt)
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


def build_source(
    vocab_size: int,
    branching: int,
    zipf_exponent: float,
    seed: int,
    num_topics: int = 1,
    topic_boost: float = 1.0,
) -> TopicChainSource:
    """The seeded language described in the module docstring."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    if not 1 <= branching <= vocab_size:
        raise ValueError(f"branching must be in [1, vocab_size={vocab_size}], got {branching}")
    if not (zipf_exponent >= 0 and math.isfinite(zipf_exponent)):
        raise ValueError(f"zipf_exponent must be finite and >= 0, got {zipf_exponent}")
    if not 1 <= num_topics <= vocab_size:
        raise ValueError(f"num_topics must be in [1, vocab_size={vocab_size}], got {num_topics}")
    if not (topic_boost >= 1 and math.isfinite(topic_boost)):
        raise ValueError(f"topic_boost must be finite and >= 1, got {topic_boost}")
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(vocab_size)
    # Forcing i -> i+1 (mod V) makes every chain irreducible: every token reaches every other.
    # Forcing the self loop 0 -> 0 (a cycle of length 1) makes it aperiodic, so each pi_z is
    # unique and power iteration converges. With branching == 1 there is no room for the loop:
    # the chain is the pure cycle, irreducible with uniform pi, which power iteration starts from.
    ranks = torch.randperm(vocab_size, generator=gen).to(torch.float64) + 1.0
    popularity = ranks.pow(-zipf_exponent)  # (V,) global Zipf weight of each token
    # Successor sets are drawn without replacement with probability ∝ popularity (Gumbel top-k):
    # popular tokens follow many tokens, so the token frequencies are skewed as in a language.
    u = torch.rand(vocab_size, vocab_size, generator=gen, dtype=torch.float64)
    gumbel = -(-u.log()).log()  # (V, V) standard Gumbel noise
    scores = popularity.log() * SUCCESSOR_SKEW + gumbel  # (V, V) candidate priority
    scores[rows, rows] = -math.inf  # no self loops: a popular token would repeat itself on end
    scores[rows, (rows + 1) % vocab_size] = math.inf  # always kept
    if branching >= 2:
        scores[0, 0] = math.inf
    successors = scores.topk(branching, dim=1).indices  # (V, K), distinct per row
    topic_of = torch.randperm(vocab_size, generator=gen) % num_topics  # (V,) a random partition
    boost = torch.ones(num_topics, vocab_size, dtype=torch.float64)
    boost[topic_of, rows] = topic_boost  # boost[z, j] = beta when token j belongs to topic z
    weights = popularity[successors] * boost[:, successors]  # (M, V, K), all > 0
    probs = weights / weights.sum(dim=2, keepdim=True)
    stationary = torch.stack([stationary_distribution(successors, p) for p in probs])
    return TopicChainSource(successors, probs, stationary, topic_of)


def make_splits(data_config: Any, seq_len: int, vocab_size: int):
    """Train (num_train, seq_len + 1) and val (num_val, seq_len + 1) int64 ids, and the source."""
    d = data_config
    _check_positive("seq_len", seq_len)
    _check_positive("num_train", d.num_train_samples)
    _check_positive("num_val", d.num_val_samples)
    source = build_source(
        vocab_size, d.branching, d.zipf_exponent, d.seed, d.num_topics, d.topic_boost
    )
    # seq_len + 1 tokens per row: inputs row[:-1] and targets row[1:] both have seq_len positions.
    # One generator per split: val is an independent draw and does not move when num_train does.
    train = source.sample(
        d.num_train_samples, seq_len + 1, torch.Generator().manual_seed(d.seed + 1)
    )
    val = source.sample(d.num_val_samples, seq_len + 1, torch.Generator().manual_seed(d.seed + 2))
    return train, val, source


@dataclass(frozen=True)
class BenchReference:
    """What the validation split allows: its floor and its context-free loss, per position."""

    bayes_floor: float
    unigram_loss: float
    floor_per_position: list[float]
    unigram_per_position: list[float]

    def context_learned(self, val_loss: float) -> float:
        """Fraction of the unigram -> floor gap that a model with this loss has closed (NaN when
        the language has no context to learn: then nothing can be judged learned)."""
        gap = self.unigram_loss - self.bayes_floor
        return (self.unigram_loss - val_loss) / gap if gap > 1e-9 else math.nan


def reference_losses(source: TopicChainSource, val: torch.Tensor) -> BenchReference:
    """Exact Bayes floor and unigram loss of a validation split (targets val[:, 1:])."""
    bayes = -source.bayes_log_probs(val)  # (N, L-1)
    unigram = -source.unigram_log_probs(val)
    return BenchReference(
        bayes_floor=float(bayes.mean()),
        unigram_loss=float(unigram.mean()),
        floor_per_position=bayes.mean(dim=0).tolist(),
        unigram_per_position=unigram.mean(dim=0).tolist(),
    )


def bench_reference(config: Any) -> dict[str, Any]:
    """The bench's reference figures for comparison.json (computed from the config alone)."""
    d, m = config.data, config.model
    _, val, source = make_splits(d, m.max_seq_len, m.vocab_size)
    ref = reference_losses(source, val)
    return {
        "description": bench_description(config),
        "unigram_loss": ref.unigram_loss,
        "bayes_floor": ref.bayes_floor,
        "floor_per_position": ref.floor_per_position,
        "unigram_per_position": ref.unigram_per_position,
        "num_topics": d.num_topics,
        "topic_boost": d.topic_boost,
        "branching": d.branching,
        "zipf_exponent": d.zipf_exponent,
    }


def bench_description(config: Any) -> str:
    d, m = config.data, config.model
    return (
        f"seeded topic chain: {m.vocab_size} tokens, Zipf popularity (exponent "
        f"{d.zipf_exponent:g}), {d.branching} successors per token, {d.num_topics} "
        f"topic(s) boosted x{d.topic_boost:g} per sequence"
    )


def _cdf(probs: torch.Tensor) -> torch.Tensor:
    cdf = probs.to(torch.float64).cumsum(dim=-1)
    # last entry exactly 1 (x / x), not 1 - eps from rounding, so u < 1 always lands in the row;
    # equal entries stay equal, so a trailing zero-probability entry is still never picked
    return cdf / cdf[..., -1:]


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
