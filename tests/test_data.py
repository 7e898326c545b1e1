"""Tests for the seeded Markov-chain data source and its entropy-rate loss floor."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ryot.data import MarkovSource, build_markov_source, make_splits, stationary_distribution

SMALL = dict(vocab_size=64, seq_len=32, num_train=40, num_val=8, branching=4, zipf_exponent=1.1)


def dense(source: MarkovSource) -> torch.Tensor:
    """(V, V) float64 transition matrix of a source, for checks only."""
    v = source.vocab_size
    p = torch.zeros(v, v, dtype=torch.float64)
    return p.scatter_add_(1, source.successors, source.probs.to(torch.float64))


def hand_built(successors: list[list[int]], probs: list[list[float]]) -> MarkovSource:
    succ = torch.tensor(successors, dtype=torch.int64)
    pr = torch.tensor(probs, dtype=torch.float64)
    return MarkovSource(succ, pr, stationary_distribution(succ, pr))


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_tensors():
    a_train, a_val, a_src = make_splits(**SMALL, seed=7)
    b_train, b_val, b_src = make_splits(**SMALL, seed=7)
    assert torch.equal(a_train, b_train)
    assert torch.equal(a_val, b_val)
    assert torch.equal(a_src.successors, b_src.successors)
    assert torch.equal(a_src.probs, b_src.probs)
    assert torch.equal(a_src.stationary, b_src.stationary)


def test_different_seed_gives_different_tensors():
    a_train, a_val, a_src = make_splits(**SMALL, seed=7)
    b_train, b_val, b_src = make_splits(**SMALL, seed=8)
    assert not torch.equal(a_train, b_train)
    assert not torch.equal(a_val, b_val)
    assert not torch.equal(a_src.successors, b_src.successors)


def test_train_and_val_are_different_draws():
    train, val, _ = make_splits(**{**SMALL, "num_val": SMALL["num_train"]}, seed=3)
    assert not torch.equal(train, val)
    # no val sequence is a copy of any train sequence
    assert not (train[:, None, :] == val[None, :, :]).all(dim=2).any()


def test_val_does_not_depend_on_num_train():
    _, val_a, _ = make_splits(**SMALL, seed=5)
    _, val_b, _ = make_splits(**{**SMALL, "num_train": 3}, seed=5)
    assert torch.equal(val_a, val_b)


# --- shapes and ranges -------------------------------------------------------------------------


def test_shapes_dtypes_and_id_range():
    train, val, source = make_splits(**SMALL, seed=0)
    v, k = SMALL["vocab_size"], SMALL["branching"]
    assert train.shape == (SMALL["num_train"], SMALL["seq_len"] + 1)
    assert val.shape == (SMALL["num_val"], SMALL["seq_len"] + 1)
    assert train.dtype == val.dtype == torch.int64
    for split in (train, val):
        assert split.min() >= 0 and split.max() < v
    assert source.successors.shape == (v, k) and source.successors.dtype == torch.int64
    assert source.probs.shape == (v, k) and source.probs.dtype == torch.float64
    assert source.stationary.shape == (v,) and source.stationary.dtype == torch.float64
    assert source.vocab_size == v


def test_default_config_splits():
    train, val, source = make_splits(2048, 128, 1600, 256, 16, 1.1, 42)
    assert train.shape == (1600, 129) and val.shape == (256, 129)
    assert 0 < source.entropy_rate() < math.log(16)


# --- chain structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("v,k", [(2, 1), (2, 2), (5, 1), (5, 3), (5, 5), (64, 4), (300, 16)])
def test_successor_sets_are_distinct_and_forced(v, k):
    succ = build_markov_source(v, k, 1.1, seed=1).successors
    assert succ.min() >= 0 and succ.max() < v
    assert all(len(set(row.tolist())) == k for row in succ)  # distinct per row
    rows = torch.arange(v)
    assert ((succ == ((rows + 1) % v)[:, None]).sum(dim=1) == 1).all()  # i -> i+1 forced
    if k >= 2:
        assert 0 in succ[0].tolist()  # self loop on token 0 forced


def test_probs_are_permuted_zipf_weights():
    v, k, s = 50, 8, 1.3
    source = build_markov_source(v, k, s, seed=2)
    w = torch.arange(1, k + 1, dtype=torch.float64).pow(-s)
    w /= w.sum()
    sorted_rows = source.probs.sort(dim=1, descending=True).values
    torch.testing.assert_close(sorted_rows, w.expand(v, k), rtol=0, atol=1e-15)
    # the ranks really are shuffled: the top weight is not always in the same column
    assert source.probs.argmax(dim=1).unique().numel() > 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("v,k,s", [(2, 1, 0.0), (2, 2, 1.0), (64, 4, 1.1), (512, 16, 2.0)])
def test_probs_and_stationary_are_distributions(v, k, s, seed):
    source = build_markov_source(v, k, s, seed)
    torch.testing.assert_close(source.probs.sum(dim=1), torch.ones(v, dtype=torch.float64))
    assert (source.stationary >= 0).all()
    assert abs(float(source.stationary.sum()) - 1.0) < 1e-9
    fixed = source.stationary @ dense(source)  # pi P
    assert float((fixed - source.stationary).abs().max()) < 1e-9


@settings(max_examples=40, deadline=None)
@given(
    v=st.integers(2, 40),
    k_frac=st.floats(0, 1),
    s=st.floats(0, 3),
    seed=st.integers(0, 2**31),
)
def test_built_chains_are_valid(v, k_frac, s, seed):
    k = 1 + round(k_frac * (v - 1))
    source = build_markov_source(v, k, s, seed)
    assert all(len(set(row.tolist())) == k for row in source.successors)
    torch.testing.assert_close(source.probs.sum(dim=1), torch.ones(v, dtype=torch.float64))
    assert float((source.stationary @ dense(source) - source.stationary).abs().max()) < 1e-9
    assert 0.0 <= source.entropy_rate() <= math.log(k) + 1e-12


def test_every_sampled_transition_is_allowed():
    train, val, source = make_splits(**SMALL, seed=11)
    allowed = dense(source) > 0  # (V, V)
    for split in (train, val):
        assert allowed[split[:, :-1], split[:, 1:]].all()


def test_zero_probability_successors_are_never_sampled():
    # token 0 lists successor 1 with probability 0, so 0 -> 1 must never occur
    succ = [[1, 0, 2], [2, 0, 1], [0, 1, 2]]
    probs = [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]
    x = hand_built(succ, probs).sample(200, 50, torch.Generator().manual_seed(0))
    assert not ((x[:, :-1] == 0) & (x[:, 1:] == 1)).any()


def test_first_token_follows_stationary_distribution():
    source = build_markov_source(8, 3, 1.5, seed=6)
    first = source.sample(40_000, 1, torch.Generator().manual_seed(1))[:, 0]
    freq = torch.bincount(first, minlength=8).double() / first.numel()
    assert float((freq - source.stationary).abs().max()) < 0.02


# --- entropy rate ------------------------------------------------------------------------------


def _binary_entropy(p: float) -> float:
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def test_entropy_rate_two_state_chain():
    a, b = 0.3, 0.1  # P(0 -> 1) = a, P(1 -> 0) = b
    source = hand_built([[0, 1], [1, 0]], [[1 - a, a], [1 - b, b]])
    pi = torch.tensor([b / (a + b), a / (a + b)], dtype=torch.float64)
    torch.testing.assert_close(source.stationary, pi, rtol=0, atol=1e-12)
    expected = b / (a + b) * _binary_entropy(a) + a / (a + b) * _binary_entropy(b)
    assert source.entropy_rate() == pytest.approx(expected, abs=1e-12)


def test_entropy_rate_deterministic_cycle_is_zero():
    source = hand_built([[1], [2], [3], [0]], [[1.0]] * 4)
    torch.testing.assert_close(source.stationary, torch.full((4,), 0.25, dtype=torch.float64))
    assert source.entropy_rate() == 0.0
    assert build_markov_source(7, 1, 1.1, seed=0).entropy_rate() == 0.0


def test_entropy_rate_uniform_successors_is_log_k():
    v, k = 10, 4
    succ = [[(i + j) % v for j in range(k)] for i in range(v)]  # doubly stochastic: uniform pi
    source = hand_built(succ, [[1 / k] * k] * v)
    torch.testing.assert_close(source.stationary, torch.full((v,), 1 / v, dtype=torch.float64))
    assert source.entropy_rate() == pytest.approx(math.log(k), abs=1e-12)
    # zipf_exponent 0 makes every row uniform, so the rate is ln K whatever pi is
    assert build_markov_source(100, 6, 0.0, seed=3).entropy_rate() == pytest.approx(math.log(6))


def test_entropy_rate_matches_empirical_nll():
    source = build_markov_source(64, 8, 1.1, seed=4)
    x = source.sample(64, 2000, torch.Generator().manual_seed(9))
    p = dense(source)[x[:, :-1], x[:, 1:]]  # (N, L-1) true probability of each transition
    nll = float(-p.log().mean())
    assert nll == pytest.approx(source.entropy_rate(), rel=0.03)


# --- argument validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,name",
    [
        ({"vocab_size": 1}, "vocab_size"),
        ({"branching": 0}, "branching"),
        ({"branching": 65}, "branching"),
        ({"zipf_exponent": -0.5}, "zipf_exponent"),
        ({"zipf_exponent": float("nan")}, "zipf_exponent"),
        ({"zipf_exponent": float("inf")}, "zipf_exponent"),
        ({"seq_len": 0}, "seq_len"),
        ({"num_train": 0}, "num_train"),
        ({"num_val": -1}, "num_val"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(overrides, name):
    with pytest.raises(ValueError, match=name):
        make_splits(**{**SMALL, **overrides}, seed=0)


def test_bad_sample_arguments_raise_value_error():
    source = build_markov_source(8, 2, 1.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="num_sequences"):
        source.sample(0, 5, gen)
    with pytest.raises(ValueError, match="length"):
        source.sample(3, 0, gen)


def test_slow_mixing_chain_raises_runtime_error():
    # pi = (10/11, 1/11), second eigenvalue 0.989: far more than 5 iterations from uniform
    succ = torch.tensor([[0, 1], [1, 0]])
    probs = torch.tensor([[0.999, 0.001], [0.99, 0.01]], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="converge"):
        stationary_distribution(succ, probs, max_iters=5)
    pi = stationary_distribution(succ, probs)
    torch.testing.assert_close(pi, torch.tensor([10 / 11, 1 / 11], dtype=torch.float64))
