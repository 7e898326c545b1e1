"""Tests for the seeded topic-chain language and its exact Bayes-optimal loss floor."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ryot.bench.data import (
    BenchReference,
    TopicChainSource,
    bench_reference,
    build_source,
    make_splits,
    reference_losses,
    stationary_distribution,
)
from ryot.config import DataConfig

SMALL = DataConfig(
    num_train_samples=40,
    num_val_samples=8,
    branching=4,
    zipf_exponent=1.1,
    num_topics=2,
    topic_boost=4.0,
    seed=7,
)
SEQ_LEN, VOCAB = 32, 64
ROOT = Path(__file__).resolve().parent.parent


def splits(seq_len: int = SEQ_LEN, vocab: int = VOCAB, **overrides):
    return make_splits(dataclasses.replace(SMALL, **overrides), seq_len, vocab)


def dense(source: TopicChainSource, z: int) -> torch.Tensor:
    """(V, V) float64 transition matrix of topic z, for checks only."""
    v = source.vocab_size
    p = torch.zeros(v, v, dtype=torch.float64)
    return p.scatter_add_(1, source.successors, source.probs[z])


def sparse_step(source: TopicChainSource, z: int, pi: torch.Tensor) -> torch.Tensor:
    """pi P_z, summed straight from the sparse rows: (pi P)[j] = sum_i pi[i] P_z(j | i)."""
    mass = (pi[:, None] * source.probs[z]).reshape(-1)
    out = torch.zeros(source.vocab_size, dtype=torch.float64)
    return out.scatter_add_(0, source.successors.reshape(-1), mass)


def hand_built(successors: list[list[int]], probs: list[list[float]]) -> TopicChainSource:
    """A one-topic source with the given sparse rows."""
    succ = torch.tensor(successors, dtype=torch.int64)
    pr = torch.tensor(probs, dtype=torch.float64)
    pi = stationary_distribution(succ, pr)
    return TopicChainSource(
        succ, pr[None], pi[None], torch.zeros(len(successors), dtype=torch.int64)
    )


def entropy_rates(source: TopicChainSource) -> torch.Tensor:
    """(M,) sum_i pi_z(i) H(P_z(. | i)): the loss of a predictor that knows the topic."""
    row_entropy = -(source.probs * source.probs.log()).sum(dim=2)  # (M, V)
    return (source.stationary * row_entropy).sum(dim=1)


def brute_force_log_probs(source: TopicChainSource, seq: list[int]) -> list[float]:
    """log p(x_t | x_<t), t >= 1, with the topic enumerated and every probability a product."""
    m = source.num_topics
    trans = [dense(source, z).tolist() for z in range(m)]
    # joint[z] = p(z, x_0 .. x_{t-1}) = (1/M) pi_z(x_0) prod_s P_z(x_s | x_{s-1})
    joint = [source.stationary[z, seq[0]].item() / m for z in range(m)]
    out = []
    for prev, cur in itertools.pairwise(seq):
        posterior = [j / sum(joint) for j in joint]  # p(z | x_<t)
        out.append(math.log(sum(posterior[z] * trans[z][prev][cur] for z in range(m))))
        joint = [joint[z] * trans[z][prev][cur] for z in range(m)]
    return out


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_tensors():
    a_train, a_val, a_src = splits()
    b_train, b_val, b_src = splits()
    assert torch.equal(a_train, b_train)
    assert torch.equal(a_val, b_val)
    for field in ("successors", "probs", "stationary", "topic_of"):
        assert torch.equal(getattr(a_src, field), getattr(b_src, field)), field


def test_different_seed_gives_different_tensors():
    a_train, a_val, a_src = splits(seed=7)
    b_train, b_val, b_src = splits(seed=8)
    assert not torch.equal(a_train, b_train)
    assert not torch.equal(a_val, b_val)
    assert not torch.equal(a_src.successors, b_src.successors)
    assert not torch.equal(a_src.topic_of, b_src.topic_of)


def test_train_and_val_are_different_draws():
    train, val, _ = splits(num_val_samples=SMALL.num_train_samples, seed=3)
    assert not torch.equal(train, val)
    # no val sequence is a copy of any train sequence
    assert not (train[:, None, :] == val[None, :, :]).all(dim=2).any()


def test_smoke_val_shares_no_sequence_with_train(smoke_config):
    d, m = smoke_config.data, smoke_config.model
    train, val, _ = make_splits(d, m.max_seq_len, m.vocab_size)
    assert not (train[:, None, :] == val[None, :, :]).all(dim=2).any()


def test_val_does_not_depend_on_num_train_and_train_not_on_num_val():
    train_a, val_a, _ = splits()
    _, val_b, _ = splits(num_train_samples=3)
    train_c, _, _ = splits(num_val_samples=1)
    assert torch.equal(val_a, val_b)
    assert torch.equal(train_a, train_c)


def test_sample_is_seeded():
    source = build_source(32, 4, 1.1, seed=0, num_topics=3, topic_boost=5.0)
    a = source.sample(16, 20, torch.Generator().manual_seed(1))
    b = source.sample(16, 20, torch.Generator().manual_seed(1))
    c = source.sample(16, 20, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --- shapes and ranges -------------------------------------------------------------------------


def test_shapes_dtypes_and_id_range():
    train, val, source = splits()
    v, k, m = VOCAB, SMALL.branching, SMALL.num_topics
    assert train.shape == (SMALL.num_train_samples, SEQ_LEN + 1)
    assert val.shape == (SMALL.num_val_samples, SEQ_LEN + 1)
    assert train.dtype == val.dtype == torch.int64
    for split in (train, val):
        assert split.min() >= 0 and split.max() < v
    assert source.successors.shape == (v, k) and source.successors.dtype == torch.int64
    assert source.probs.shape == (m, v, k) and source.probs.dtype == torch.float64
    assert source.stationary.shape == (m, v) and source.stationary.dtype == torch.float64
    assert source.topic_of.shape == (v,) and source.topic_of.dtype == torch.int64
    assert source.vocab_size == v and source.num_topics == m
    assert source.marginal().shape == (v,) and source.marginal().dtype == torch.float64


def test_full_size_vocabulary_is_skewed_and_context_dependent():
    # the only V=2048 build in this file: the Stage 3a vocabulary, one topic to keep it quick
    source = build_source(2048, 16, 1.1, seed=42)
    q = source.marginal()
    unigram_entropy = float(-(q * q.log()).sum())
    rate = float(entropy_rates(source)[0])
    assert 1.0 < math.log(2048) - unigram_entropy  # Zipf-like token frequencies
    assert rate < unigram_entropy - 1.0  # the previous token is worth more than a nat
    assert 0.0 < rate < math.log(16)
    x = source.sample(8, 16, torch.Generator().manual_seed(0))
    assert x.shape == (8, 16) and 0 <= x.min() and x.max() < 2048
    source._successor_index(x[:, :-1].reshape(-1), x[:, 1:].reshape(-1))


# --- source structure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "v,k,m", [(2, 1, 1), (2, 2, 2), (5, 1, 3), (5, 3, 1), (5, 5, 5), (64, 4, 4), (300, 16, 8)]
)
def test_successor_sets_are_distinct_and_forced(v, k, m):
    succ = build_source(v, k, 1.1, seed=1, num_topics=m, topic_boost=3.0).successors
    assert succ.shape == (v, k)
    assert succ.min() >= 0 and succ.max() < v
    assert all(len(set(row.tolist())) == k for row in succ)  # distinct per row
    rows = torch.arange(v)
    assert ((succ == ((rows + 1) % v)[:, None]).sum(dim=1) == 1).all()  # i -> i+1 forced
    if k >= 2:
        assert 0 in succ[0].tolist()  # self loop 0 -> 0 forced


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "v,k,s,m,beta",
    [(2, 1, 0.0, 1, 1.0), (2, 2, 1.0, 2, 5.0), (64, 4, 1.1, 4, 20.0), (512, 16, 2.0, 3, 8.0)],
)
def test_probs_are_positive_distributions_and_each_pi_is_stationary(v, k, s, m, beta, seed):
    source = build_source(v, k, s, seed, num_topics=m, topic_boost=beta)
    assert source.probs.shape == (m, v, k)
    assert (source.probs > 0).all()
    torch.testing.assert_close(
        source.probs.sum(dim=2), torch.ones(m, v, dtype=torch.float64), rtol=0, atol=1e-12
    )
    for z in range(m):
        pi = source.stationary[z]
        assert (pi > 0).all()  # irreducible: every token is reachable in every topic
        assert abs(float(pi.sum()) - 1.0) < 1e-12
        assert float((sparse_step(source, z, pi) - pi).abs().max()) < 1e-9


def test_probs_are_popularity_times_topic_boost():
    # same seed, so same successors, popularity and partition: only the boost differs
    beta = 7.0
    plain = build_source(40, 6, 1.1, seed=3, num_topics=3, topic_boost=1.0)
    boosted = build_source(40, 6, 1.1, seed=3, num_topics=3, topic_boost=beta)
    assert torch.equal(plain.successors, boosted.successors)
    assert torch.equal(plain.topic_of, boosted.topic_of)
    for z in range(3):
        in_topic = boosted.topic_of[boosted.successors] == z  # (V, K)
        expected = plain.probs[z] * torch.where(in_topic, beta, 1.0)
        expected /= expected.sum(dim=1, keepdim=True)
        torch.testing.assert_close(boosted.probs[z], expected, rtol=1e-12, atol=0)


def test_popularity_is_a_permuted_zipf_law():
    # branching = V: every row lists every token, so each row is the normalized Zipf law
    v, s = 12, 1.3
    source = build_source(v, v, s, seed=5)
    w = torch.arange(1, v + 1, dtype=torch.float64).pow(-s)
    w /= w.sum()
    sorted_rows = source.probs[0].sort(dim=1, descending=True).values
    torch.testing.assert_close(sorted_rows, w.expand(v, v), rtol=1e-12, atol=0)
    # the same token has the same probability in every row (a global popularity) ...
    by_token = torch.zeros(v, v, dtype=torch.float64).scatter_(
        1, source.successors, source.probs[0]
    )
    torch.testing.assert_close(by_token, by_token[:1].expand(v, v), rtol=1e-12, atol=0)
    # ... and the ranks are shuffled, not token 0 first
    assert not torch.equal(by_token[0].argsort(descending=True), torch.arange(v))


def test_zipf_exponent_zero_gives_uniform_rows():
    source = build_source(50, 8, 0.0, seed=2)
    torch.testing.assert_close(
        source.probs, torch.full((1, 50, 8), 1 / 8, dtype=torch.float64), rtol=0, atol=1e-15
    )


def test_boost_one_makes_every_topic_the_same_chain():
    one = build_source(48, 6, 1.1, seed=4, num_topics=1, topic_boost=1.0)
    many = build_source(48, 6, 1.1, seed=4, num_topics=4, topic_boost=1.0)
    assert many.probs.shape[0] == 4
    for z in range(4):
        torch.testing.assert_close(many.probs[z], one.probs[0], rtol=0, atol=1e-15)
        torch.testing.assert_close(many.stationary[z], one.stationary[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(many.marginal(), one.marginal(), rtol=0, atol=1e-12)


def test_one_topic_ignores_the_boost():
    # with one topic every token is boosted, so the boost cancels in each row
    plain = build_source(48, 6, 1.1, seed=4, num_topics=1, topic_boost=1.0)
    boosted = build_source(48, 6, 1.1, seed=4, num_topics=1, topic_boost=50.0)
    torch.testing.assert_close(boosted.probs, plain.probs, rtol=1e-13, atol=0)
    torch.testing.assert_close(boosted.stationary, plain.stationary, rtol=0, atol=1e-12)


@pytest.mark.parametrize("v,m", [(2, 1), (2, 2), (10, 3), (64, 4), (37, 37)])
def test_topic_of_partitions_the_vocabulary(v, m):
    topic_of = build_source(v, 1, 1.1, seed=6, num_topics=m).topic_of
    assert topic_of.shape == (v,)
    assert topic_of.min() >= 0 and topic_of.max() < m
    assert torch.bincount(topic_of, minlength=m).min() >= 1  # m non-empty groups


def test_each_topic_favours_its_own_tokens():
    source = build_source(64, 8, 1.1, seed=8, num_topics=4, topic_boost=20.0)
    # mass[z, y]: probability pi_z puts on the tokens of topic y
    mass = torch.stack([source.stationary[:, source.topic_of == y].sum(dim=1) for y in range(4)])
    mass = mass.T
    for z in range(4):
        others = [mass[w, z] for w in range(4) if w != z]
        assert mass[z, z] > 2 * max(others), (z, mass)


@settings(max_examples=40, deadline=None)
@given(
    v=st.integers(2, 40),
    k_frac=st.floats(0, 1),
    m_frac=st.floats(0, 1),
    # Mild skew only: with more, a chain with few successors is more often nearly periodic,
    # and the power iteration then fails to converge (see
    # test_stationary_of_a_nearly_periodic_config_valid_chain).
    s=st.floats(0, 0.7),
    beta=st.floats(1, 3),
    seed=st.integers(0, 2**31),
)
def test_built_sources_are_valid(v, k_frac, m_frac, s, beta, seed):
    k = 1 + round(k_frac * (v - 1))
    m = 1 + round(m_frac * (v - 1))
    source = build_source(v, k, s, seed, num_topics=m, topic_boost=beta)
    assert all(len(set(row.tolist())) == k for row in source.successors)
    assert (source.probs > 0).all()
    torch.testing.assert_close(
        source.probs.sum(dim=2), torch.ones(m, v, dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert torch.bincount(source.topic_of, minlength=m).min() >= 1
    for z in range(m):
        pi = source.stationary[z]
        assert float((sparse_step(source, z, pi) - pi).abs().max()) < 1e-9
    assert 0.0 <= float(entropy_rates(source).max()) <= math.log(k) + 1e-12


# --- argument validation -----------------------------------------------------------------------


BUILD = dict(vocab_size=8, branching=3, zipf_exponent=1.1, seed=0, num_topics=2, topic_boost=2.0)


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        ({"vocab_size": 1}, r"vocab_size must be >= 2, got 1"),
        ({"branching": 0}, r"branching must be in \[1, vocab_size=8\], got 0"),
        ({"branching": 9}, r"branching must be in \[1, vocab_size=8\], got 9"),
        ({"zipf_exponent": -0.5}, r"zipf_exponent .* got -0.5"),
        ({"zipf_exponent": float("nan")}, r"zipf_exponent .* got nan"),
        ({"zipf_exponent": float("inf")}, r"zipf_exponent .* got inf"),
        ({"num_topics": 0}, r"num_topics must be in \[1, vocab_size=8\], got 0"),
        ({"num_topics": 9}, r"num_topics must be in \[1, vocab_size=8\], got 9"),
        ({"topic_boost": 0.5}, r"topic_boost .* got 0.5"),
        ({"topic_boost": float("nan")}, r"topic_boost .* got nan"),
        ({"topic_boost": float("inf")}, r"topic_boost .* got inf"),
    ],
)
def test_bad_build_arguments_raise_value_error_naming_them(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_source(**{**BUILD, **overrides})


@pytest.mark.parametrize(
    "seq_len,overrides,pattern",
    [
        (0, {}, r"seq_len must be a positive integer, got 0"),
        (SEQ_LEN, {"num_train_samples": 0}, r"num_train must be a positive integer, got 0"),
        (SEQ_LEN, {"num_val_samples": -1}, r"num_val must be a positive integer, got -1"),
        (SEQ_LEN, {"num_topics": VOCAB + 1}, r"num_topics must be in \[1, vocab_size=64\]"),
        (SEQ_LEN, {"branching": 0}, r"branching"),
    ],
)
def test_bad_split_arguments_raise_value_error_naming_them(seq_len, overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        splits(seq_len=seq_len, **overrides)


def test_bad_sample_arguments_raise_value_error():
    source = build_source(8, 2, 1.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="num_sequences must be a positive integer, got 0"):
        source.sample(0, 5, gen)
    with pytest.raises(ValueError, match="length must be a positive integer, got 0"):
        source.sample(3, 0, gen)


# --- stationary distributions ------------------------------------------------------------------


def test_two_state_chain_stationary():
    a, b = 0.3, 0.1  # P(0 -> 1) = a, P(1 -> 0) = b
    source = hand_built([[0, 1], [1, 0]], [[1 - a, a], [1 - b, b]])
    pi = torch.tensor([b / (a + b), a / (a + b)], dtype=torch.float64)
    torch.testing.assert_close(source.stationary[0], pi, rtol=0, atol=1e-12)


def test_deterministic_cycle_has_uniform_stationary():
    source = build_source(7, 1, 1.1, seed=0, num_topics=3, topic_boost=10.0)
    assert torch.equal(source.successors[:, 0], (torch.arange(7) + 1) % 7)
    assert torch.equal(source.probs, torch.ones(3, 7, 1, dtype=torch.float64))
    uniform = torch.full((3, 7), 1 / 7, dtype=torch.float64)
    torch.testing.assert_close(source.stationary, uniform, rtol=0, atol=1e-15)
    assert float(entropy_rates(source).abs().max()) == 0.0


def test_slow_mixing_chain_raises_runtime_error():
    # pi = (10/11, 1/11), second eigenvalue 0.989: far more than 5 iterations from uniform
    succ = torch.tensor([[0, 1], [1, 0]])
    probs = torch.tensor([[0.999, 0.001], [0.99, 0.01]], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="converge"):
        stationary_distribution(succ, probs, max_iters=5)
    pi = stationary_distribution(succ, probs)
    torch.testing.assert_close(pi, torch.tensor([10 / 11, 1 / 11], dtype=torch.float64))


def test_stationary_of_a_nearly_periodic_config_valid_chain():
    source = build_source(4, 2, 0.0, seed=18, num_topics=2, topic_boost=20.0)
    for z in range(2):
        pi = source.stationary[z]
        assert float((sparse_step(source, z, pi) - pi).abs().max()) < 1e-9


# --- sampling ----------------------------------------------------------------------------------


def test_every_sampled_transition_is_a_successor():
    train, val, source = splits()
    allowed = torch.zeros(VOCAB, VOCAB, dtype=torch.bool)
    allowed[torch.arange(VOCAB)[:, None], source.successors] = True
    for split in (train, val):
        source._successor_index(split[:, :-1].reshape(-1), split[:, 1:].reshape(-1))
        assert allowed[split[:, :-1], split[:, 1:]].all()


def test_zero_probability_successors_are_never_sampled():
    # token 0 lists successor 1 with probability 0, so 0 -> 1 must never occur
    succ = [[1, 0, 2], [2, 0, 1], [0, 1, 2]]
    probs = [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]
    x = hand_built(succ, probs).sample(200, 50, torch.Generator().manual_seed(0))
    assert not ((x[:, :-1] == 0) & (x[:, 1:] == 1)).any()
    assert not ((x[:, :-1] == 1) & (x[:, 1:] != 2)).any()
    assert not ((x[:, :-1] == 2) & (x[:, 1:] == 2)).any()


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_transition_frequencies_match_probs(k):
    # one topic, so every transition out of token i is a draw from probs[0, i]
    source = build_source(8, k, 0.5, seed=k)
    x = source.sample(500, 100, torch.Generator().manual_seed(k))
    prev, cur = x[:, :-1].reshape(-1), x[:, 1:].reshape(-1)
    counts = torch.zeros(8, 8, dtype=torch.float64).index_put_(
        (prev, cur), torch.ones(prev.numel(), dtype=torch.float64), accumulate=True
    )
    n = counts.sum(dim=1, keepdim=True)
    assert n.min() > 300
    p = dense(source, 0)
    se = (p * (1 - p) / n).sqrt()
    assert ((counts / n - p).abs() <= 5 * se + 1e-12).all()


def test_first_token_follows_the_stationary_mixture():
    source = build_source(8, 3, 1.5, seed=6, num_topics=4, topic_boost=20.0)
    # the test means something only if the topics' start distributions really differ
    assert float((source.stationary - source.marginal()).abs().max()) > 0.1
    first = source.sample(40_000, 1, torch.Generator().manual_seed(1))[:, 0]
    freq = torch.bincount(first, minlength=8).double() / first.numel()
    assert float((freq - source.marginal()).abs().max()) < 0.015


def test_one_topic_per_sequence():
    m = 4
    source = build_source(64, 8, 1.1, seed=3, num_topics=m, topic_boost=50.0)
    x = source.sample(256, 64, torch.Generator().manual_seed(0))
    share = torch.nn.functional.one_hot(source.topic_of[x], m).double()  # (N, L, M)
    first_half = share[:, :32].mean(dim=1)
    second_half = share[:, 32:].mean(dim=1)
    dominant = share.mean(dim=1).max(dim=1)
    # a sequence keeps its topic to the end: both halves favour the same topic's tokens
    assert (first_half.argmax(dim=1) == second_half.argmax(dim=1)).double().mean() > 0.95
    # and each sequence's topic is over-represented about as much as pi_z says it should be
    own_mass = torch.stack([source.stationary[z, source.topic_of == z].sum() for z in range(m)])
    assert float(dominant.values.mean()) > 0.6
    assert abs(float(dominant.values.mean()) - float(own_mass.mean())) < 0.05
    # the topics are drawn uniformly, one per sequence
    assert torch.bincount(dominant.indices, minlength=m).min() > 256 / m / 2


# --- Bayes floor -------------------------------------------------------------------------------


def test_bayes_log_probs_exact_against_brute_force():
    source = build_source(5, 3, 1.1, seed=0, num_topics=2, topic_boost=6.0)
    # every sequence of length 4 the source can produce
    seqs = [
        [a, b, c, d]
        for a in range(5)
        for b in source.successors[a].tolist()
        for c in source.successors[b].tolist()
        for d in source.successors[c].tolist()
    ]
    assert len(seqs) == 5 * 3**3
    got = source.bayes_log_probs(torch.tensor(seqs))
    assert got.shape == (len(seqs), 3) and got.dtype == torch.float64
    expected = torch.tensor([brute_force_log_probs(source, s) for s in seqs], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    # the predictive distribution after every prefix sums to one over the possible next tokens
    grid = got.exp().reshape(5, 3, 3, 3, 3)  # (x_0, k_1, k_2, k_3, position)
    torch.testing.assert_close(grid[:, :, 0, 0, 0].sum(dim=1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(
        grid[:, :, :, 0, 1].sum(dim=2), torch.ones(5, 3, dtype=torch.float64)
    )
    torch.testing.assert_close(grid[..., 2].sum(dim=3), torch.ones(5, 3, 3, dtype=torch.float64))
    # and the topic matters here: the same (x_1, x_2) -> x_3 gets different probabilities
    # after different x_0, because x_0 is evidence for the topic
    by_suffix: dict[tuple[int, ...], list[float]] = {}
    for s, lp in zip(seqs, got[:, 2].tolist(), strict=True):
        by_suffix.setdefault(tuple(s[1:]), []).append(lp)
    assert max(max(v) - min(v) for v in by_suffix.values()) > 1e-3


@settings(max_examples=25, deadline=None)
@given(
    v=st.integers(2, 7),
    k_frac=st.floats(0, 1),
    m=st.integers(1, 3),
    beta=st.floats(1, 3),  # mild, as in test_built_sources_are_valid
    seed=st.integers(0, 2**31),
)
def test_bayes_log_probs_match_brute_force_on_random_sources(v, k_frac, m, beta, seed):
    k = 1 + round(k_frac * (v - 1))
    source = build_source(v, k, 0.5, seed, num_topics=min(m, v), topic_boost=beta)
    x = source.sample(4, 6, torch.Generator().manual_seed(seed))
    expected = [brute_force_log_probs(source, s) for s in x.tolist()]
    got = source.bayes_log_probs(x)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10)
    assert (got <= 1e-12).all()


def test_single_topic_bayes_is_the_transition_log_prob():
    source = build_source(32, 5, 1.1, seed=2)
    x = source.sample(16, 40, torch.Generator().manual_seed(3))
    expected = dense(source, 0)[x[:, :-1], x[:, 1:]].log()
    torch.testing.assert_close(source.bayes_log_probs(x), expected, rtol=0, atol=1e-12)


def test_single_topic_floor_is_the_entropy_rate():
    source = build_source(64, 8, 1.1, seed=4)
    x = source.sample(256, 200, torch.Generator().manual_seed(9))
    per_seq = -source.bayes_log_probs(x).mean(dim=1)  # (N,) independent sequences
    se = float(per_seq.std()) / math.sqrt(per_seq.numel())
    rate = float(entropy_rates(source)[0])
    assert abs(float(per_seq.mean()) - rate) < 5 * se, (float(per_seq.mean()), rate, se)


def test_floor_decreases_as_context_reveals_the_topic():
    source = build_source(256, 16, 1.1, seed=0, num_topics=4, topic_boost=20.0)
    length = 48
    nll = -source.bayes_log_probs(source.sample(512, length, torch.Generator().manual_seed(1)))
    n = nll.shape[0]
    # position 0 (x_1 given x_0 alone) has the exact expectation H(X_1 | X_0)
    joint = (source.stationary[:, :, None] * source.probs).mean(dim=0)  # p(x_0, x_1), (V, K)
    h1 = float(-(joint * (joint / source.marginal()[:, None]).log()).sum())
    se0 = float(nll[:, 0].std()) / math.sqrt(n)
    assert abs(float(nll[:, 0].mean()) - h1) < 5 * se0
    # late positions: the topic is nearly known, so the floor falls towards the known-topic rate
    late = nll[:, length // 2 :].mean(dim=1)
    se = float(late.std()) / math.sqrt(n)
    known_topic = float(entropy_rates(source).mean())
    assert h1 - float(late.mean()) > max(0.1, 5 * se)
    assert float(late.mean()) > known_topic - 5 * se
    early = nll[:, : length // 4].mean()
    assert float(early) > float(nll[:, -length // 4 :].mean())


def test_impossible_transition_raises_value_error():
    source = build_source(16, 3, 1.1, seed=0, num_topics=2, topic_boost=3.0)
    x = source.sample(3, 5, torch.Generator().manual_seed(0))
    source.bayes_log_probs(x)  # a sample is fine
    x[1, 3] = next(j for j in range(16) if j not in source.successors[x[1, 2]].tolist())
    with pytest.raises(ValueError, match="cannot produce"):
        source.bayes_log_probs(x)


# --- unigram and reference losses --------------------------------------------------------------


def test_unigram_log_probs_are_the_log_marginal():
    source = build_source(32, 4, 1.1, seed=1, num_topics=3, topic_boost=5.0)
    q = source.marginal()
    torch.testing.assert_close(q, source.stationary.mean(dim=0), rtol=0, atol=0)
    assert abs(float(q.sum()) - 1.0) < 1e-12 and (q > 0).all()
    x = source.sample(8, 12, torch.Generator().manual_seed(2))
    got = source.unigram_log_probs(x)
    assert got.shape == (8, 11) and got.dtype == torch.float64
    torch.testing.assert_close(got, q.log()[x[:, 1:]], rtol=0, atol=0)


def test_reference_losses():
    _, val, source = splits(num_val_samples=64)
    ref = reference_losses(source, val)
    assert isinstance(ref, BenchReference)
    assert 0 < ref.bayes_floor < ref.unigram_loss < math.log(VOCAB)
    assert len(ref.floor_per_position) == len(ref.unigram_per_position) == SEQ_LEN
    assert sum(ref.floor_per_position) / SEQ_LEN == pytest.approx(ref.bayes_floor, abs=1e-12)
    assert sum(ref.unigram_per_position) / SEQ_LEN == pytest.approx(ref.unigram_loss, abs=1e-12)
    assert ref.bayes_floor == pytest.approx(float(-source.bayes_log_probs(val).mean()), abs=1e-12)
    assert ref.unigram_loss == pytest.approx(float(-source.unigram_log_probs(val).mean()))


def test_context_learned_spans_unigram_to_floor():
    ref = BenchReference(
        bayes_floor=2.0, unigram_loss=5.0, floor_per_position=[], unigram_per_position=[]
    )
    assert ref.context_learned(5.0) == 0.0
    assert ref.context_learned(2.0) == 1.0
    assert ref.context_learned(3.5) == pytest.approx(0.5)
    assert ref.context_learned(6.0) < 0
    _, val, source = splits()
    real = reference_losses(source, val)
    assert real.context_learned(real.unigram_loss) == 0.0
    assert real.context_learned(real.bayes_floor) == pytest.approx(1.0, abs=1e-12)


def test_make_splits_from_the_smoke_config(smoke_config):
    d, m = smoke_config.data, smoke_config.model
    train, val, source = make_splits(d, m.max_seq_len, m.vocab_size)
    assert train.shape == (d.num_train_samples, m.max_seq_len + 1)
    assert val.shape == (d.num_val_samples, m.max_seq_len + 1)
    assert source.vocab_size == m.vocab_size and source.num_topics == d.num_topics


def test_bench_reference_on_the_smoke_config(smoke_config):
    import jsonschema

    bench = bench_reference(smoke_config)
    schema = json.loads((ROOT / "ryot/report/comparison.schema.json").read_text(encoding="utf-8"))
    bench_schema = schema["$defs"]["bench"]
    # The synthetic language's bench also names its settings (required where the floor is known).
    assert set(bench) == set(bench_schema["required"]) | set(bench_schema["then"]["required"])
    jsonschema.validate(bench, bench_schema)
    d, m = smoke_config.data, smoke_config.model
    for key in ("unigram_loss", "bayes_floor"):
        assert math.isfinite(bench[key]), key
    assert 0 < bench["bayes_floor"] < bench["unigram_loss"]
    for key in ("floor_per_position", "unigram_per_position"):
        assert len(bench[key]) == m.max_seq_len, key
        assert all(math.isfinite(x) for x in bench[key]), key
    assert bench["num_topics"] == d.num_topics and bench["topic_boost"] == d.topic_boost
    assert bench["branching"] == d.branching and bench["zipf_exponent"] == d.zipf_exponent
    assert str(m.vocab_size) in bench["description"]
    # the figures are the validation split's, from the same seeded source make_splits builds
    _, val, source = make_splits(d, m.max_seq_len, m.vocab_size)
    ref = reference_losses(source, val)
    assert bench["bayes_floor"] == ref.bayes_floor
    assert bench["floor_per_position"] == ref.floor_per_position
