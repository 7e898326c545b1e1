"""The plan's error rates, simulated from a real job's recorded times (ryot.judge.power)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ryot.judge import power
from tests.conftest import ROOT

EXAMPLE = ROOT / "reports" / "examples" / "cpu-2core-epyc-no-avx512"


@pytest.fixture(scope="module")
def noise() -> power.Noise:
    return power.recorded_noise(json.loads((EXAMPLE / "comparison.json").read_text("utf-8")))


def test_recorded_noise_of_the_committed_example(noise):
    assert noise.runs == 6
    assert 0.005 < noise.sigma < 0.1  # a few percent per run, as such runs vary
    assert noise.stall_s >= power.MIN_STALL_S and noise.stall_share >= power.MIN_STALL_SHARE


def test_the_shipped_plan_keeps_both_error_rates_under_5_percent(noise):
    """3 pairs, a 95% t interval, GO at a lower bound >= 25%, on the recorded noise."""
    rates = power.error_rates(noise, pairs=3, threshold=0.25, level=0.95, draws=8000, seed=3)
    assert rates.false_go <= 0.05
    assert rates.false_no_go <= 0.05
    # Without the stall rule, one stall in six runs costs the plan most of its power.
    assert rates.false_no_go_without_rule > 2 * rates.false_no_go


def test_the_rates_answer_to_the_noise(noise):
    """Not a constant: a noisier machine loses power, and the false-GO rate stays bounded."""
    noisy = replace(noise, sigma=4 * noise.sigma)
    rates = power.error_rates(noisy, pairs=3, threshold=0.25, level=0.95, draws=8000, seed=3)
    assert rates.false_no_go > 0.2
    assert rates.false_go <= 0.05


def test_the_command_prints_the_rates_and_refuses_a_folder_without_a_run(tmp_path, capsys):
    assert power.main([str(EXAMPLE), "--draws", "2000"]) == 0
    out = capsys.readouterr().out
    assert "false GO    (true speedup 25%)" in out and "false NO-GO (true speedup 40%" in out
    assert power.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ryot.judge.power: ") and "comparison.json" in err and "\n" not in err
