"""`pytest validation/` refuses bad options with one usage error before any training.

The suite is started in process (a nested `pytest.main`): what is tested is the ryot pytest
plugin's option checks (ryot/pytest_plugin.py), which end the session once the suite is collected,
before anything is trained or written. tests/test_pytest_plugin.py tests the plugin with pytester.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import ROOT


@pytest.fixture
def run_validation(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no GPU, even with one

    def run(*args: str) -> tuple[int, str]:
        code = pytest.main(["validation/", "-p", "no:cacheprovider", *args])
        return code, capsys.readouterr().err

    return run


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpu"], "--gpu: CUDA is not available"),
        (["--ryot-config", "configs/missing.yaml"], "config file not found"),
        (["--ryot-repeats", "0"], "--ryot-repeats: must be >= 1"),
    ],
)
def test_bad_option_is_a_usage_error_before_training(run_validation, tmp_path, args, message):
    out = tmp_path / "run"
    code, err = run_validation(*args, "--ryot-out", str(out))
    assert code == pytest.ExitCode.USAGE_ERROR, err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written, nothing trained


def test_unwritable_out_is_a_usage_error(run_validation, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    code, err = run_validation("--ryot-out", str(blocker / "run"))
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "--ryot-out" in err and "cannot write there" in err
    assert blocker.read_text(encoding="utf-8") == "x"


def test_huge_model_is_a_usage_error(run_validation, tmp_path):
    huge = tmp_path / "huge.yaml"
    text = (ROOT / "configs" / "smoke.yaml").read_text(encoding="utf-8")
    huge.write_text(text.replace("embed_dim: 32", "embed_dim: 10000000"), encoding="utf-8")
    code, err = run_validation("--ryot-config", str(huge), "--ryot-out", str(tmp_path / "run"))
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "training needs at least" in err


def test_folder_in_use_is_a_usage_error(run_validation, tmp_path):
    from ryot.experiment.run_folder import RunFolder

    with RunFolder(tmp_path / "run"):  # another run holds the lock
        code, err = run_validation("--ryot-out", str(tmp_path / "run"))
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "--ryot-out" in err and "another ryot run is writing there" in err
