"""What a server needs under real clients, on the real process: a body limit that costs no
memory, failures that stay with their own request, and a client gone mid-body that is one log
line. Each figure measured here goes into stage3b.json."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.load import run_phase

MIB = 1 << 20
BIG_BODY_BYTES = 64 * MIB  # larger than the 50 MiB that took 2.9 GiB to refuse
MAX_GROWTH_BYTES = 16 * MIB  # a quarter of the body: buffering it whole could not stay under
MAX_HEALTH_S = 1.0  # /health while a big body streams in; it answers in milliseconds otherwise


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak_rss(pid: int) -> None:
    """Start VmHWM (peak RSS) afresh from the current RSS (Linux: clear_refs 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="utf-8")
    except OSError as exc:
        pytest.skip(f"cannot reset the server's peak RSS here ({exc}): Linux /proc needed")


def _big_bodies():
    """The issue's shape, one-token prompts, declared by Content-Length; then chunked."""
    prompts = b"[25]," * (BIG_BODY_BYTES // 5 - 4)
    declared = b'{"prompts": [' + prompts + b"[25]]}"

    def chunked():
        for start in range(0, len(declared), MIB):
            yield declared[start : start + MIB]

    return [("content-length", declared), ("chunked", chunked())]


def test_a_body_over_the_limit_is_413_in_bounded_memory_and_health_answers(server, stage3b):
    pid = server.proc.pid
    _reset_peak_rss(pid)
    rss_before = _status_kib(pid, "VmRSS") * 1024
    answers: dict[str, int] = {}
    sent = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for how, body in _big_bodies():
                answers[how] = client.post("/infer", content=body).status_code
        sent.set()

    sender = threading.Thread(target=send, name="big-body", daemon=True)
    sender.start()
    health_s = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while not sent.is_set():
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            health_s.append(time.perf_counter() - started)
            sent.wait(0.02)
    sender.join()
    growth = _status_kib(pid, "VmHWM") * 1024 - rss_before
    stage3b.data["body_limit"] = {
        "limit_bytes": stage3b.data["health"]["limits"]["max_body_bytes"],
        "body_bytes": BIG_BODY_BYTES,
        "answers": answers,
        "peak_rss_growth_bytes": growth,
        "health_polls": len(health_s),
        "health_max_s": max(health_s, default=None),
    }
    assert answers == {"content-length": 413, "chunked": 413}
    assert growth < MAX_GROWTH_BYTES, f"peak RSS grew {growth / MIB:.1f} MiB for a refused body"
    assert max(health_s) < MAX_HEALTH_S, f"/health took {max(health_s):.2f} s meanwhile"


def test_a_tiny_temperature_beside_seven_valid_requests_fails_none(server, served_run):
    _, _, serving = served_run
    valid = [{"prompts": [[i + 1, 25]], "max_new_tokens": 4} for i in range(7)]
    tiny = [{"prompts": [[25]], "max_new_tokens": 4, "temperature": t} for t in (1e-40, 5e-324)]
    phase = run_phase(server.url, valid + tiny, len(valid) + len(tiny), serving.time_limit_s)
    assert [a.status for a in phase.answers] == [200] * 9, phase.errors()
    greedy = run_phase(server.url, [{"prompts": [[25]], "max_new_tokens": 4}], 1, 30).answers
    for answer in phase.answers[-2:]:
        assert answer.body["completions"] == greedy[0].body["completions"]


def _metrics(url: str) -> dict[str, dict]:
    """family name -> {"type": ..., "samples": {(sample name, labels): value}}."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        family.name: {
            "type": family.type,
            "samples": {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples},
        }
        for family in text_string_to_metric_families(text)
    }


def _infer_500s(metrics: dict) -> float:
    key = ("ryot_requests_total", (("endpoint", "/infer"), ("status", "500")))
    return metrics["ryot_requests"]["samples"].get(key, 0.0)


def test_a_client_gone_mid_body_is_one_log_line_and_a_count(server):
    before = _metrics(server.url)
    mark = len(server.output)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b'{"prompts": [[1, 2')  # fmt: skip
        time.sleep(0.2)  # the server is now waiting for the rest of the body
    deadline = time.monotonic() + 10
    while not any("disconnected" in line for line in server.output[mark:]):
        assert time.monotonic() < deadline, f"no disconnect line: {server.output[mark:]}"
        time.sleep(0.05)
    time.sleep(0.2)  # anything the server would print after that line
    logged = server.output[mark:]
    assert not any("Traceback" in line or "ClientDisconnect" in line for line in logged), logged
    assert len([line for line in logged if line.strip()]) == 1, logged
    assert "POST /infer" in logged[0] and "disconnected after 18 bytes" in logged[0], logged
    after = _metrics(server.url)
    key = ("ryot_client_disconnects_total", (("endpoint", "/infer"),))
    assert after["ryot_client_disconnects"]["samples"][key] == (
        before["ryot_client_disconnects"]["samples"].get(key, 0.0) + 1
    )
    assert _infer_500s(after) == _infer_500s(before) == 0.0
