"""The `ryot` command: exit codes, one-line errors, artifacts, encoding-safe output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ryot import cli
from tests.conftest import CONFIGS

SMOKE = str(CONFIGS / "smoke.yaml")


def run_ryot(*args: str, encoding: str = "utf-8", cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-m", "ryot", *args],
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_baseline_run_writes_log_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = run_ryot("stage3a", "--config", SMOKE, "--out", str(out))
    stdout = proc.stdout.decode("utf-8")
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    assert "BASELINE TRAINING COMPLETE" in stdout
    assert "Epoch \u2502 Loss" in stdout and "\u2713" in stdout
    assert (out / "checkpoints" / "baseline.pt").is_file()
    log = (out / "monitor.log").read_text(encoding="utf-8")
    assert "BASELINE TRAINING COMPLETE" in log


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_narrow_console_encoding_gets_ascii_fallbacks(tmp_path, encoding):
    proc = run_ryot("stage3a", "--config", SMOKE, "--out", str(tmp_path), encoding=encoding)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    stdout = proc.stdout.decode(encoding)  # decodes strictly: every byte is valid there
    assert "[OK]" in stdout and "Epoch | Loss" in stdout
    assert "\u2713" not in stdout and "Traceback" not in proc.stderr.decode(encoding, "replace")
    # The log keeps the real symbols: it is UTF-8 whatever the console is.
    assert "\u2713" in (tmp_path / "monitor.log").read_text(encoding="utf-8")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_config_is_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  num_layers: four\n", encoding="utf-8")
    assert cli.main(["stage3a", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys)
    assert str(bad) in err and "model.num_layers" in err and "'four'" in err
    assert not (tmp_path / "o").exists()  # rejected before anything was written


def test_missing_config_is_exit_2(tmp_path, capsys):
    assert cli.main(["stage3a", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in _one_line_error(capsys)


def test_cuda_without_cuda_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.resolve_device.__globals__["torch"].cuda, "is_available", lambda: False)
    args = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--device", "cuda"]
    assert cli.main(args) == 2
    assert "CUDA is not available" in _one_line_error(capsys)


def test_unwritable_out_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    assert cli.main(["stage3a", "--config", SMOKE, "--out", str(blocker / "sub")]) == 2
    assert "--out" in _one_line_error(capsys)
    assert blocker.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize("argv", [["stage3a", "--arms", "warp"], ["stage3a", "--bogus"], []])
def test_usage_errors_are_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    _one_line_error(capsys)


def test_divergence_is_exit_3(tmp_path, monkeypatch, capsys):
    import ryot.train

    real = ryot.train.lm_loss
    monkeypatch.setattr(ryot.train, "lm_loss", lambda logits, t: real(logits, t) * float("nan"))
    assert cli.main(["stage3a", "--config", SMOKE, "--out", str(tmp_path)]) == 3
    assert "DIVERGED" in capsys.readouterr().out


def test_resume_continues_the_run(tmp_path, capsys):
    first = ["stage3a", "--config", SMOKE, "--out", str(tmp_path)]
    assert cli.main(first) == 0
    checkpoint = tmp_path / "checkpoints" / "baseline.pt"
    assert cli.main([*first, "--resume", str(checkpoint)]) == 0
    assert "Resumed from step" in capsys.readouterr().out


def test_resume_from_garbage_is_exit_2(tmp_path, capsys):
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"nope")
    args = ["stage3a", "--config", SMOKE, "--out", str(tmp_path / "o"), "--resume", str(garbage)]
    assert cli.main(args) == 2
    assert "not a readable checkpoint" in _one_line_error(capsys)
