"""The `ryot` command: exit codes, one-line errors, artifacts, encoding-safe output."""

from __future__ import annotations

import io
import json
import sys

import jsonschema
import pytest

from ryot import cli
from ryot.experiment.runners import InProcessRunner, SubprocessRunner
from ryot.optim.stack_spec import load_stack_factory
from ryot.report.schema import load_schema
from tests.conftest import SMOKE, smoke_variant

# The tests that use the real CLI runs of tests/conftest.py (go_run, judged_runs) share one
# xdist worker, which makes them once (tests/conftest.py's SHARED_RUNS); the others go anywhere.


def test_full_run_is_go_and_writes_every_artifact(go_run):
    proc, out = go_run
    stdout = proc.stdout.decode("cp1252")  # strict: every byte must be valid cp1252
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    assert "PHASE 3 STAGE 3a: GO" in stdout and "PROCEED TO STAGE 3b" in stdout
    for section in ("BASELINE TRAINING", "OPTIMIZED TRAINING", "RESULTS COMPARISON"):
        assert section in stdout
    assert (out / "checkpoints" / "baseline.pt").is_file()
    assert (out / "checkpoints" / "optimized.pt").is_file()
    assert "RESULTS COMPARISON" in (out / "monitor.log").read_text(encoding="utf-8")


def test_comparison_json_validates_against_its_schema(go_run):
    _, out = go_run
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, load_schema())
    assert data["verdict"]["status"] == "GO"
    # the discarded warm-up run, the A/A baseline with pair 0's seed right before pair 0's
    # baseline, then pairs in alternating order (B O, O B, B O); on a busy machine a
    # contaminated run's re-runs (attempt 1, 2) come beside these
    runs = [(r["arm"], r["role"], r["seed"]) for r in data["runs"] if not r.get("attempt")]
    seed = data["config"]["training"]["seed"]
    assert runs == [
        ("baseline", "warmup", seed),
        ("baseline", "aa", seed),
        ("baseline", "pair", seed), ("optimized", "pair", seed),
        ("optimized", "pair", seed + 1), ("baseline", "pair", seed + 1),
        ("baseline", "pair", seed + 2), ("optimized", "pair", seed + 2),
    ]  # fmt: skip
    # each arm sees every narrow console encoding
    for arm in ("baseline", "optimized"):
        encodings = {r["console_encoding"] for r in data["runs"] if r["arm"] == arm}
        assert encodings == {"cp1252", "ascii"}, arm


def test_cp1252_console_gets_ascii_fallbacks(go_run):
    proc, out = go_run  # the real command, workers included, on a cp1252 console
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    stdout = proc.stdout.decode("cp1252")
    assert "[OK]" in stdout and "Epoch | Loss" in stdout and "\u2713" not in stdout
    assert "Traceback" not in proc.stderr.decode("cp1252", "replace")
    # The log keeps the real symbols: it is UTF-8 whatever the console is.
    assert "\u2713" in (out / "monitor.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "encoding, expected, absent",
    [("ascii", "Epoch | Loss", "\u2502"), ("utf-8", "Epoch \u2502 Loss", "Epoch | Loss")],
)
def test_console_output_fits_its_encoding(tmp_path, monkeypatch, in_process, encoding, expected,
                                          absent):  # fmt: skip
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding, errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", stream)
    args = ["--out", str(tmp_path), "--arms", "baseline", "--repeats", "1"]
    assert cli.main(["stage3a", "--config", SMOKE, *args]) == 0
    text = raw.getvalue().decode(encoding)  # strict: every byte is valid in the console's encoding
    assert expected in text and absent not in text


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


def test_divergence_is_exit_3_debug(tmp_path, capsys, in_process):
    args = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--repeats", "1",
            "--stack", "tests.sabotage:nan_stack"]  # fmt: skip
    assert cli.main(args) == 3
    out = capsys.readouterr().out
    assert "DIVERGED" in out and "DEBUG" in out


class OptimizedArmInWorkers(SubprocessRunner):
    """The optimized arm's runs in real workers, on their narrow consoles; the baseline's (the
    pair's and the A/A run, which print nothing a console could refuse) in this process."""

    def __post_init__(self):
        super().__post_init__()
        factory = load_stack_factory(self.stack_factory)
        self.here = InProcessRunner(self.device, stack_factory=factory)

    def run(self, job, checkpoint, resume=None):
        if job.arm == "optimized":
            return super().run(job, checkpoint, resume)
        return self.here.run(job, checkpoint, resume)


def test_a_run_that_crashes_its_narrow_console_is_debug(tmp_path, capsys, monkeypatch):
    # The crash needs a real worker's narrow console; one is enough: one pair, no warm-up run.
    monkeypatch.setattr(
        cli, "make_runner",
        lambda device, out, stack, console, launch=None: OptimizedArmInWorkers(
            device, out, stack_factory=stack, console=console
        ),
    )  # fmt: skip
    config = smoke_variant(tmp_path, "smoke", lambda c: c["measurement"].update(warmup_epochs=0))
    args = ["stage3a", "--config", str(config), "--out", str(tmp_path / "run"), "--repeats", "1",
            "--stack", "tests.sabotage:emoji_stack"]  # fmt: skip
    assert cli.main(args) == 3
    data = json.loads((tmp_path / "run" / "comparison.json").read_text(encoding="utf-8"))
    failed = {c["id"] for c in data["criteria"] if not c["passed"]}
    assert "encoding_safety" in failed and data["verdict"]["status"] == "DEBUG"
    (crashed,) = [r for r in data["runs"] if r["arm"] == "optimized"]
    assert crashed["console_encoding"] in ("cp1252", "ascii") and crashed["result"] is None
    assert "UnicodeEncodeError" in crashed["error"]


@pytest.mark.parametrize(
    "status, code, decision", [("INVESTIGATE", 1, "INVESTIGATE & RETRY"), ("DEBUG", 3, "DEBUG")]
)
def test_verdict_sets_the_exit_code(judged_runs, status, code, decision):
    run = judged_runs[status]
    assert run.exit_code == code, run.stdout[-3000:]
    assert f"PHASE 3 STAGE 3a: {status}" in run.stdout and decision in run.stdout


def test_resume_continues_the_run(tmp_path, capsys, in_process):
    first = ["stage3a", "--config", SMOKE, "--out", str(tmp_path), "--arms", "baseline"]
    assert cli.main(first) == 0
    checkpoint = tmp_path / "checkpoints" / "baseline.pt"
    assert cli.main([*first, "--resume", str(checkpoint)]) == 0
    assert "Resumed from step" in capsys.readouterr().out


def test_resume_of_another_arm_is_exit_2_before_training(tmp_path, capsys, in_process):
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
