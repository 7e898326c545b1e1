"""The team's own workload, end to end: a model Ryot does not own (tests/workloads/tiny_gpt.py,
through model.factory) on nanoGPT-style token files a test writes, judged like the bench; and
every bad input a usage error before anything is written.

The workload's parts have their own tests (test_tokens.py, test_factory.py,
test_foreign_optim.py); these are the acceptance of the whole path: `ryot stage3a`, the
`pytest validation/` plugin, the preflight's one-line errors and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ryot import cli
from ryot.config import load_config
from ryot.optim.workload_check import WorkloadError, _check_model_here, check_workload
from tests.conftest import CONFIGS, ROOT
from tests.test_pytest_plugin import QUIET, in_process_suite_runner, modules_from_root
from tests.test_reliability import one_line_error

pytest_plugins = ["pytester"]
VOCAB = 64


def write_tokens(folder: Path, train: int = 30_000, val: int = 2_000, top: int = VOCAB) -> Path:
    """train.bin / val.bin of a seeded bigram chain (4 successors per token): learnable text."""
    rng = np.random.default_rng(0)
    successors = rng.integers(0, top, size=(top, 4))
    tokens = np.empty(train + val, dtype=np.uint16)
    tokens[0] = 0
    choices = rng.integers(0, 4, size=len(tokens))
    for i in range(1, len(tokens)):
        tokens[i] = successors[tokens[i - 1], choices[i]]
    folder.mkdir(parents=True, exist_ok=True)
    tokens[:train].tofile(folder / "train.bin")
    tokens[train:].tofile(folder / "val.bin")
    return folder


def tokens_config(folder: Path, data_path: Path, edit=None) -> Path:
    """tests/workloads/tiny_gpt.yaml on the token files at `data_path`."""
    data = yaml.safe_load((ROOT / "tests/workloads/tiny_gpt.yaml").read_text(encoding="utf-8"))
    data["name"] = "tiny-gpt-tokens"
    data["data"] = {"source": "tokens", "path": str(data_path), "num_val_samples": 32}
    data["criteria"].pop("min_context_learned")
    data["criteria"]["min_gain_over_unigram"] = 0.05
    if edit is not None:
        edit(data)
    path = folder / "tokens.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def token_run(tmp_path_factory):
    """One `ryot stage3a` of the test-only model on token files, jobs in this process."""
    base = tmp_path_factory.mktemp("tokens")
    config = tokens_config(base, write_tokens(base / "data"))
    out = base / "run"
    with pytest.MonkeyPatch.context() as mp:
        from tests.conftest import in_process_runner

        mp.setattr(cli, "make_runner", in_process_runner)
        code = cli.main(["stage3a", "--config", str(config), "--out", str(out)])
    return code, out, json.loads((out / "comparison.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_foreign_model_on_token_files_is_judged_like_the_bench(token_run):
    code, out, data = token_run
    assert code in (0, 1), data["verdict"]  # judged (GO or INVESTIGATE), never DEBUG
    workload = data["workload"]
    assert workload["model"]["factory"] == "tests.workloads.tiny_gpt:build"
    assert workload["model"]["factory_kwargs"] == {"width": 32, "heads": 2, "layers": 4}
    files = workload["data"]["files"]
    assert files["train"]["tokens"] == 30_000 and len(files["train"]["sha256"]) == 64
    assert data["bench"]["bayes_floor"] is None and data["bench"]["unigram_loss"] > 0
    learned = next(c for c in data["criteria"] if c["id"] == "baseline_learned")
    assert learned["passed"], learned
    assert "unigram" in learned["detail"] and "floor unknown" in learned["detail"]
    arms = {r["arm"] for r in data["runs"] if r.get("result")}
    assert {"baseline", "optimized"} <= arms
    # every built-in applied where it could, and said where it could not
    evidence = {e["name"]: e for e in data["runs"][-1]["result"]["evidence"]}
    assert any("token dropping" in a for a in evidence["compression"]["applied"])
    skipped = [s["what"] for s in evidence["kernel"]["skipped"]]
    assert "scaled_dot_product_attention" in skipped
    assert (out / "report.html").is_file()
    # the checkpoint records what was trained: the factory, its arguments, the data's hashes
    from ryot.train.checkpoint import load_state

    state = load_state(out / "checkpoints/optimized.pt")
    assert state.model_config == workload["model"] and state.data == workload["data"]


@pytest.mark.slow
def test_the_plugin_runs_the_suite_on_a_foreign_workload(pytester, monkeypatch, tmp_path):
    """`pytest validation/ --ryot-config` with the test-only model and token files."""
    from ryot.experiment import runners

    modules_from_root(monkeypatch)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runners, "SubprocessRunner", in_process_suite_runner)
    config = tokens_config(tmp_path, write_tokens(tmp_path / "data"))
    out = pytester.path / "run"
    result = pytester.runpytest_inprocess(
        str(ROOT / "validation"), *QUIET[:2], "--ryot-config", str(config), "--ryot-out", str(out),
    )  # fmt: skip
    stdout = result.stdout.str()
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), stdout[-3000:]
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert data["workload"]["model"]["factory"] == "tests.workloads.tiny_gpt:build"
    node = "validation/test_stage3a.py::test_criterion[baseline_learned]"
    assert data["tests"][node] == "passed"


# -- bad input: one line naming the key and the value, exit 2, nothing written ------------------


def _bad_tokens(folder: Path) -> None:
    write_tokens(folder, top=VOCAB + 10)  # ids up to 73 against model.vocab_size 64


def _few_tokens(folder: Path) -> None:
    write_tokens(folder, train=100)  # one batch needs 8 x 33


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: folder.mkdir(), "train.bin"),  # an empty folder: no train.bin
        (_bad_tokens, ">= model.vocab_size = 64"),
        (_few_tokens, "one batch needs"),
    ],
    ids=["missing", "token-id-past-vocab", "too-few-tokens"],
)
def test_bad_token_files_are_a_usage_error(tmp_path, capsys, make, message):
    make(tmp_path / "data")
    config = tokens_config(tmp_path, tmp_path / "data")
    out = tmp_path / "run"
    assert cli.main(["stage3a", "--config", str(config), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "data." in err and message in err, err
    assert not out.exists()


def _factory(spec: str, **more):
    def edit(data):
        data["model"]["factory"] = spec
        data["model"]["factory_kwargs"] = {}
        data["model"].update(more)

    return edit


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tests.workloads.nosuch:build", "cannot import 'tests.workloads.nosuch'"),
        ("tests.workloads.tiny_gpt:raises", "raised RuntimeError: no weights for you"),
        ("tests.workloads.tiny_gpt:last_position_only", "expected (2, 32, 64)"),
        ("tests.workloads.tiny_gpt:non_causal", "not causal"),
    ],
    ids=["import", "raises", "wrong-shape", "non-causal"],
)
def test_a_bad_factory_is_named_with_its_reason(tmp_path, spec, message):
    """The check the throwaway process runs (ryot.optim.workload_check), here in process:
    one process per case would cost the unit suite seconds each (one is tested below)."""
    config = load_config(tokens_config(tmp_path, write_tokens(tmp_path / "d"), _factory(spec)))
    with pytest.raises(WorkloadError) as caught:
        _check_model_here(config, __import__("torch").device("cpu"), "tokens.yaml")
    text = str(caught.value)
    assert "\n" not in text and f"model.factory = {spec}" in text and message in text, text


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tests.workloads.tiny_gpt:no_blocks", "optimizations.semantic_compressor.ratio = 0.25"),
        (
            "tests.workloads.tiny_gpt:full_length_only",
            "optimizations.inference_scaling.warmup_steps = 2",
        ),
    ],  # fmt: skip
    ids=["token-dropping-without-blocks", "warmup-on-a-full-length-only-model"],
)
def test_a_builtin_that_cannot_apply_is_named(tmp_path, spec, message):
    config = load_config(tokens_config(tmp_path, write_tokens(tmp_path / "d"), _factory(spec)))
    with pytest.raises(WorkloadError) as caught:
        _check_model_here(config, __import__("torch").device("cpu"), "tokens.yaml")
    text = str(caught.value)
    assert "\n" not in text and message in text and "cannot apply" in text, text


def test_ryot_model_with_no_middle_layer_cannot_drop_tokens(tmp_path):
    data = yaml.safe_load((CONFIGS / "smoke.yaml").read_text(encoding="utf-8"))
    data["model"]["num_layers"] = 2
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(WorkloadError, match=r"semantic_compressor\.ratio = 0\.25 cannot apply"):
        check_workload(load_config(path), str(path), __import__("torch").device("cpu"))


def test_the_cli_checks_a_factory_in_a_throwaway_process(tmp_path, capsys, monkeypatch):
    """The whole path once: exit 2, one line, nothing written, and the team's module was never
    imported by this process."""
    import sys

    modules_from_root(monkeypatch)
    spec = "tests.workloads.tiny_gpt:non_causal"
    config = tokens_config(tmp_path, write_tokens(tmp_path / "d"), _factory(spec))
    out = tmp_path / "run"
    before = "tests.workloads.tiny_gpt" in sys.modules
    assert cli.main(["stage3a", "--config", str(config), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert f"model.factory = {spec}: not causal" in err, err
    assert not out.exists()
    assert ("tests.workloads.tiny_gpt" in sys.modules) == before
