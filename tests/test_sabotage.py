"""Prove the judge: sabotage the stack and the verdict must turn from GO."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ryot.config import load_config
from ryot.console import Console
from ryot.criteria import DEBUG, GO, INVESTIGATE
from ryot.optim import build_stack
from ryot.protocol import InProcessRunner
from ryot.stage3a import run_stage3a
from tests import sabotage
from tests.conftest import CONFIGS

CPU = torch.device("cpu")


def judge(config, factory, tmp_path: Path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    console = Console(io.StringIO())
    outcome = run_stage3a(
        config, "smoke.yaml", out, CPU, ["baseline", "optimized"],
        InProcessRunner(CPU, stack_factory=factory), console,
    )  # fmt: skip
    failed = {r.id for r in outcome.rows if not r.passed}
    return outcome.verdict, failed


def test_unsabotaged_smoke_stack_is_go(smoke_config, tmp_path):
    verdict, failed = judge(smoke_config, build_stack, tmp_path)
    assert (verdict, failed) == (GO, set())


@pytest.mark.parametrize(
    "factory, expected_verdict, expected_failure",
    [
        (sabotage.noop_kernel_stack, DEBUG, "optimizations_effective"),
        (sabotage.slowdown_stack, INVESTIGATE, "time_to_target"),
        (sabotage.constant_targets_stack, INVESTIGATE, "loss_match"),
        (sabotage.nan_stack, DEBUG, "no_divergence"),
    ],
    ids=["no-op optimization", "injected slowdown", "loss-degrading change", "injected NaN"],
)
def test_sabotage_turns_the_verdict(
    smoke_config, tmp_path, factory, expected_verdict, expected_failure
):
    verdict, failed = judge(smoke_config, factory, tmp_path)
    assert expected_failure in failed
    assert verdict == expected_verdict


def test_memory_hog_turns_the_verdict(smoke_config, tmp_path):
    # The smoke arms peak at a few MiB of live heap; 250 MiB is far above them and below the hog.
    config = replace(smoke_config, criteria=replace(smoke_config.criteria, max_peak_memory_mb=250))
    assert judge(config, build_stack, tmp_path / "control") == (GO, set())
    verdict, failed = judge(config, sabotage.memory_stack, tmp_path / "hog")
    # Filling 300 MiB also costs setup time, so the lenient speedup check may fail beside it.
    assert verdict == INVESTIGATE and "memory" in failed


def test_noisy_machine_turns_the_verdict(smoke_config, tmp_path):
    verdict, failed = judge(smoke_config, sabotage.make_noisy_baseline_stack(), tmp_path)
    assert "measurement_reliable" in failed and verdict != GO


def test_aa_run_never_reports_go(tmp_path):
    """Optimized identical to baseline, judged by the real Stage 3a criteria."""
    smoke = load_config(CONFIGS / "smoke.yaml")
    stage3a = load_config(CONFIGS / "stage3a.yaml")
    config = replace(smoke, criteria=stage3a.criteria)
    verdict, failed = judge(config, sabotage.aa_stack, tmp_path)
    assert verdict != GO
    assert {"speedup", "optimizations_effective"} <= failed


def test_aa_run_with_lenient_criteria_is_still_caught(smoke_config, tmp_path):
    """Even where any speed would pass, an arm with nothing enabled is a critical failure."""
    verdict, failed = judge(smoke_config, sabotage.aa_stack, tmp_path)
    assert verdict == DEBUG and "optimizations_effective" in failed


@pytest.mark.parametrize(
    "factory",
    [sabotage.half_batch_stack, sabotage.freeze_half_stack, sabotage.short_context_stack],
    ids=["fewer samples per step", "frozen parameters", "context never at full length"],
)
def test_shortcuts_that_learn_less_are_never_go(smoke_config, tmp_path, factory):
    """Stacked on the real optimized arm, each is faster per step and learns less: it never
    reaches the loss every baseline seed reaches, so its time to target is infinite."""
    verdict, failed = judge(smoke_config, factory, tmp_path)
    assert verdict != GO
    assert "time_to_target" in failed
