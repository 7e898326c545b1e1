"""`ryot serve`: the GO gate, one-line errors with exit 2, and a real process's lifecycle.

Real servers listen on 127.0.0.1, on a port the OS picks, and are stopped by the test that
started them (ServerProcess terminates, then kills, on every exit path).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import httpx
import pytest

from ryot.cli import main
from ryot.serve.process import ServerProcess
from ryot.train.checkpoint import load_checkpoint, save_checkpoint
from tests.serve_support import TINY_GPT, make_run_dir


@pytest.fixture
def run_dir(tmp_path):
    return make_run_dir(tmp_path / "run")


def _error(capsys, *argv) -> str:
    assert main(["serve", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ryot: error: "), err
    return err


def test_a_run_that_is_not_go_is_refused(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run", status="INVESTIGATE")
    err = _error(capsys, run)
    assert "verdict is INVESTIGATE, not GO" in err and "--allow-no-go" in err


def test_missing_and_corrupt_run_files_are_one_line_exit_2(run_dir, tmp_path, capsys):
    assert "no such directory" in _error(capsys, tmp_path / "absent")
    comparison = run_dir / "comparison.json"
    comparison.write_text("{not json", encoding="utf-8")
    assert "comparison.json: not readable JSON" in _error(capsys, run_dir)
    comparison.write_text(json.dumps({"verdict": "GO"}), encoding="utf-8")
    assert "comparison.json: schema_version None is not one this ryot reads" in _error(
        capsys, run_dir
    )
    comparison.unlink()
    assert "comparison.json: not found" in _error(capsys, run_dir)
    make_run_dir(run_dir)
    assert "checkpoint not found" in _error(capsys, run_dir, "--arm", "baseline")
    checkpoint = run_dir / "checkpoints" / "optimized.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert "not a readable checkpoint" in _error(capsys, run_dir)


def test_weights_that_do_not_fit_the_snapshot_are_refused(tmp_path, capsys):
    import torch

    run = make_run_dir(tmp_path / "run")
    path = run / "checkpoints" / "optimized.pt"
    state = torch.load(path, weights_only=True)
    state["model"].pop("lm_head.bias")
    torch.save(state, path)
    assert "weights do not fit the snapshot's model" in _error(capsys, run)


def test_a_factory_that_cannot_be_imported_is_one_line_exit_2(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run", config_path=TINY_GPT)
    path = run / "checkpoints" / "optimized.pt"
    state = load_checkpoint(path)
    state["config"]["model"]["factory"] = "tests.workloads.gone:build"
    save_checkpoint(state, path)
    err = _error(capsys, run)
    assert f"{path}: cannot rebuild the snapshot's model: model.factory = " in err
    assert "cannot import 'tests.workloads.gone'" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-batch", "0"], "--max-batch: must be in [1, 1024]"),
        (["--max-wait-ms", "-1"], "--max-wait-ms: must be in [0, 10000]"),
        (["--max-wait-ms", "nan"], "--max-wait-ms"),
        (["--port", "70000"], "--port: must be in [0, 65535]"),
        (["--device", "tpu"], "tpu"),
        (["--arm", "sideways"], "--arm"),
        (["--max-batch", "two"], "--max-batch"),
        (["--max-body-bytes", "10"], "--max-body-bytes: must be in [1024, 1073741824]"),
    ],
)
def test_bad_flags_are_one_line_exit_2(run_dir, capsys, flags, message):
    assert message in _error(capsys, run_dir, *flags)


def test_a_busy_port_is_one_line_exit_2(run_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in _error(
            capsys, run_dir, "--port", port
        )


def test_a_factory_model_is_served_by_a_real_process_without_a_cache(tmp_path):
    run = make_run_dir(tmp_path / "run", config_path=TINY_GPT)
    with ServerProcess(run) as server:
        health = server.wait_healthy()
        answer = httpx.post(f"{server.url}/infer", json={"prompts": [[3, 4]], "max_new_tokens": 5})
    assert health["model"]["name"] == "tests.workloads.tiny_gpt:build"
    assert health["model"]["kv_cache"] is False
    assert answer.status_code == 200 and len(answer.json()["completions"][0]) == 5
    assert server.returncode == 0


def test_allow_no_go_serves_and_health_says_so(tmp_path):
    run = make_run_dir(tmp_path / "run", status="DEBUG")
    with ServerProcess(run, ["--allow-no-go"]) as server:
        health = server.wait_healthy()
        answer = httpx.post(f"{server.url}/infer", json={"prompts": [[3, 4]], "max_new_tokens": 2})
    assert health["run"]["verdict"] == "DEBUG" and health["run"]["serving_without_go"] is True
    assert health["run"]["allow_no_go"] is True
    assert answer.status_code == 200 and len(answer.json()["completions"][0]) == 2
    assert server.returncode == 0
    assert "verdict DEBUG: --allow-no-go" in " ".join(server.output)


def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(run_dir):
    # A long batching wait holds the request in flight while the signal arrives.
    with ServerProcess(run_dir, ["--max-wait-ms", "2000", "--max-batch", "8"]) as server:
        answers: list = []

        def in_flight():
            body = {"prompts": [[1, 2, 3]], "max_new_tokens": 4}
            answers.append(httpx.post(f"{server.url}/infer", json=body, timeout=30))

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.7)  # the request is queued, waiting for company
        server.terminate()
        time.sleep(0.5)  # uvicorn closes its listening socket on its next 0.1 s tick
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{server.url}/infer", json={"prompts": [[1]]}, timeout=5)
        thread.join(30)
        code = server.stop()
    assert answers and answers[0].status_code == 200, answers
    assert len(answers[0].json()["completions"][0]) == 4
    assert code == 0, server.tail()


# The server starts with SIGINT at its default even if pytest was started with it ignored.
@pytest.mark.usefixtures("children_with_default_sigint")
def test_ctrl_c_stops_with_exit_130(run_dir):
    with ServerProcess(run_dir) as server:
        server.proc.send_signal(signal.SIGINT)
        code = server.proc.wait(30)
    assert code == 130, server.tail()
    assert "interrupted" in " ".join(server.output)
