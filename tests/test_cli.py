"""The `ryot` command: exit codes, one-line errors, artifacts, encoding-safe output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from ryot import cli
from ryot.report.comparison import load_schema
from tests.conftest import CONFIGS, ROOT

SMOKE = str(CONFIGS / "smoke.yaml")


def run_ryot(*args: str, encoding: str = "utf-8") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-m", "ryot", *args], capture_output=True, env=env, cwd=ROOT, timeout=600
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The full default job (baseline and optimized, 2 pairs) on a cp1252 console."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    proc = run_ryot("stage3a", "--config", SMOKE, "--out", str(out), encoding="cp1252")
    return proc, out


def test_full_run_is_go_and_writes_every_artifact(smoke_run):
    proc, out = smoke_run
    stdout = proc.stdout.decode("cp1252")  # strict: every byte must be valid cp1252
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    assert "PHASE 3 STAGE 3a: GO" in stdout and "PROCEED TO STAGE 3b" in stdout
    for section in ("BASELINE TRAINING", "OPTIMIZED TRAINING", "RESULTS COMPARISON"):
        assert section in stdout
    assert (out / "checkpoints" / "baseline.pt").is_file()
    assert (out / "checkpoints" / "optimized.pt").is_file()
    assert "RESULTS COMPARISON" in (out / "monitor.log").read_text(encoding="utf-8")


def test_comparison_json_validates_against_its_schema(smoke_run):
    _, out = smoke_run
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, load_schema())
    assert data["verdict"]["status"] == "GO"
    # pairs in alternating order (B O, O B, B O), then the A/A baseline with pair 0's seed
    runs = [(r["arm"], r["role"], r["seed"]) for r in data["runs"]]
    seed = data["config"]["training"]["seed"]
    assert runs == [
        ("baseline", "pair", seed), ("optimized", "pair", seed),
        ("optimized", "pair", seed + 1), ("baseline", "pair", seed + 1),
        ("baseline", "pair", seed + 2), ("optimized", "pair", seed + 2),
        ("baseline", "aa", seed),
    ]  # fmt: skip
    # each arm sees every narrow console encoding
    for arm in ("baseline", "optimized"):
        encodings = {r["console_encoding"] for r in data["runs"] if r["arm"] == arm}
        assert encodings == {"cp1252", "ascii"}, arm


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_narrow_console_encoding_gets_ascii_fallbacks(smoke_run, tmp_path, encoding):
    if encoding == "cp1252":
        proc, out = smoke_run
    else:
        out = tmp_path / "run"
        proc = run_ryot("stage3a", "--config", SMOKE, "--out", str(out), "--arms", "baseline",
                        encoding=encoding)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(encoding, "replace")
    stdout = proc.stdout.decode(encoding)
    assert "[OK]" in stdout and "Epoch | Loss" in stdout and "\u2713" not in stdout
    assert "Traceback" not in proc.stderr.decode(encoding, "replace")
    # The log keeps the real symbols: it is UTF-8 whatever the console is.
    assert "\u2713" in (out / "monitor.log").read_text(encoding="utf-8")


def test_utf8_console_gets_the_real_symbols(tmp_path):
    proc = run_ryot("stage3a", "--config", SMOKE, "--out", str(tmp_path), "--arms", "baseline")
    assert proc.returncode == 0
    assert "Epoch \u2502 Loss" in proc.stdout.decode("utf-8")


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


@pytest.mark.parametrize(
    "argv",
    [
        ["stage3a", "--arms", "warp"],
        ["stage3a", "--bogus"],
        ["stage3a", "--repeats", "0"],
        ["stage3a", "--arms", "baseline,optimized", "--resume", __file__],
        [],
    ],
)
def test_usage_errors_are_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    _one_line_error(capsys)


def test_divergence_is_exit_3_debug(tmp_path, capsys):
    args = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--repeats", "1",
            "--stack", "tests.sabotage:nan_stack"]  # fmt: skip
    assert cli.main(args) == 3
    out = capsys.readouterr().out
    assert "DIVERGED" in out and "DEBUG" in out


def test_a_run_that_crashes_its_narrow_console_is_debug(tmp_path, capsys):
    args = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--repeats", "1",
            "--stack", "tests.sabotage:emoji_stack"]  # fmt: skip
    assert cli.main(args) == 3
    data = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    failed = {c["id"] for c in data["criteria"] if not c["passed"]}
    assert "encoding_safety" in failed and data["verdict"]["status"] == "DEBUG"


def test_investigate_is_exit_1(tmp_path, capsys):
    strict = tmp_path / "strict.yaml"
    text = (CONFIGS / "smoke.yaml").read_text(encoding="utf-8")
    strict.write_text(text.replace("min_speedup_percent: -500.0", "min_speedup_percent: 99.0"),
                      encoding="utf-8")  # fmt: skip
    args = ["stage3a", "--config", str(strict), "--out", str(tmp_path / "o"), "--repeats", "2"]
    assert cli.main(args) == 1
    assert "INVESTIGATE & RETRY" in capsys.readouterr().out


def test_resume_continues_the_run(tmp_path, capsys):
    first = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--arms", "baseline"]
    assert cli.main(first) == 0
    checkpoint = tmp_path / "checkpoints" / "baseline.pt"
    assert cli.main([*first, "--resume", str(checkpoint)]) == 0
    assert "Resumed from step" in capsys.readouterr().out


def test_resume_of_another_arm_is_exit_2_before_training(tmp_path, capsys):
    first = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--arms", "baseline"]
    assert cli.main(first) == 0
    checkpoint = tmp_path / "checkpoints" / "baseline.pt"
    again = ["stage3a", "--config", SMOKE, "--out", str(tmp_path / "o"), "--arms", "optimized",
             "--resume", str(checkpoint)]  # fmt: skip
    assert cli.main(again) == 2
    err = capsys.readouterr().err
    assert "checkpoint is of arm 'baseline', not 'optimized'" in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_resume_from_garbage_is_exit_2(tmp_path, capsys):
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"nope")
    args = ["stage3a", "--config", SMOKE, "--out", str(tmp_path / "o"), "--arms", "baseline",
            "--resume", str(garbage)]  # fmt: skip
    assert cli.main(args) == 2
    assert "not a readable checkpoint" in _one_line_error(capsys)
