"""`pytest validation/` refuses bad options with one usage error before any training."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_validation(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "validation/", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # no GPU, even on a machine with one
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpu"], "--gpu: CUDA is not available"),
        (["--ryot-config", "configs/missing.yaml"], "config file not found"),
        (["--ryot-repeats", "0"], "--ryot-repeats: must be >= 1"),
    ],
)
def test_bad_option_is_a_usage_error_before_training(tmp_path, args, message):
    out = tmp_path / "run"
    proc = run_validation(*args, "--ryot-out", str(out))
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "runs").exists()  # nothing trained


def test_unwritable_out_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    proc = run_validation("--ryot-out", str(blocker / "run"))
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "cannot write there" in proc.stderr
    assert blocker.read_text(encoding="utf-8") == "x"
