"""The request body: 413 before it is read whole (declared or streamed), and a client that goes
away mid-body is one log line and a count, never a traceback or a 500."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import warnings

import pytest
import torch

from ryot.serve.app import create_app
from ryot.serve.served_run import load_model, read_verdict
from tests.serve_support import make_run_dir

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

LIMIT = 4096


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served(run_dir):
    return load_model(run_dir, "optimized", torch.device("cpu"))


@pytest.fixture(scope="module")
def client(run_dir, served):
    app = create_app(served, read_verdict(run_dir), max_batch=4, max_wait_ms=1,
                     max_body_bytes=LIMIT)  # fmt: skip
    with TestClient(app) as test_client:
        yield test_client


def _padded(size: int) -> bytes:
    """A valid request of exactly `size` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"prompts": [[1, 2]], "max_new_tokens": 2}).encode()
    return body + b" " * (size - len(body))


def test_a_body_at_the_limit_is_served_one_byte_more_is_413(client):
    assert client.post("/infer", content=_padded(LIMIT)).status_code == 200
    over = client.post("/infer", content=_padded(LIMIT + 1))
    assert over.status_code == 413
    assert over.json() == {
        "error": f"body: {LIMIT + 1} bytes declared by Content-Length, the limit is {LIMIT}",
        "field": "body",
    }


class Asgi:
    """One POST /infer straight through the ASGI interface, to see what the app reads."""

    def __init__(self, messages, headers: dict[str, str] | None = None):
        self.messages = iter(messages)
        self.headers = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        self.reads = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        self.reads += 1
        return next(self.messages)

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def post(self, app) -> Asgi:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/infer", "raw_path": b"/infer",
                 "root_path": "", "query_string": b"", "headers": self.headers,
                 "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000)}  # fmt: skip
        asyncio.run(app(scope, self.receive, self.send))
        return self

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None


def _chunks(size: int, count: int):
    for _ in range(count):
        yield {"type": "http.request", "body": b"[" * size, "more_body": True}


@pytest.fixture(scope="module")
def app(run_dir, served):
    return create_app(served, read_verdict(run_dir), max_batch=4, max_body_bytes=LIMIT)


def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(app):
    call = Asgi(_chunks(1024, 100), {"content-length": str(100 * 1024)}).post(app)
    assert call.status == 413 and call.reads == 0


@pytest.mark.parametrize("declared", [str(LIMIT + 1), "9" * 5000, "0" * 30 + str(LIMIT + 1)])
def test_any_declared_length_over_the_limit_is_413(app, declared):
    call = Asgi(_chunks(1024, 1), {"content-length": declared}).post(app)
    assert call.status == 413 and call.reads == 0
    assert b"bytes declared by Content-Length" in call.sent[1]["body"]


def test_a_declared_length_with_leading_zeros_within_the_limit_is_read(app):
    body = b'{"prompts": []}'  # read and refused 422, before any decoding (no batcher here)
    message = {"type": "http.request", "body": body, "more_body": False}
    call = Asgi([message], {"content-length": "0" * 30 + str(len(body))}).post(app)
    assert call.status == 422 and call.reads == 1


def test_a_streamed_body_is_refused_at_the_first_chunk_past_the_limit(app):
    call = Asgi(_chunks(1000, 1000)).post(app)  # no Content-Length: 1 MB would follow
    assert call.status == 413
    assert call.reads == LIMIT // 1000 + 1
    assert b"received so far" in call.sent[1]["body"]


def test_a_client_gone_mid_body_is_one_log_line_and_a_count(run_dir, served, caplog):
    app = create_app(served, read_verdict(run_dir), max_batch=4)
    part = {"type": "http.request", "body": b'{"prompts": [[1, 2', "more_body": True}
    with caplog.at_level(logging.INFO, logger="ryot.serve"):
        call = Asgi([part, {"type": "http.disconnect"}], {"content-length": "300"}).post(app)
    assert call.sent == []  # nobody to answer
    records = [r for r in caplog.records if r.name == "ryot.serve"]
    assert len(records) == 1 and records[0].exc_info is None
    line = records[0].getMessage()
    assert "\n" not in line and "disconnected after 18 bytes" in line and "POST /infer" in line
    metrics = app.state.metrics.exposition()[0].decode()
    assert 'ryot_client_disconnects_total{endpoint="/infer"} 1.0' in metrics
    assert 'endpoint="/infer",status="500"' not in metrics


def test_the_limit_defaults_to_the_runs_serving_section(run_dir, served):
    serving = dataclasses.replace(served.config.serving, max_body_bytes=2048)
    config = dataclasses.replace(served.config, serving=serving)
    app = create_app(dataclasses.replace(served, config=config), read_verdict(run_dir))
    with TestClient(app) as client:
        assert client.get("/health").json()["limits"]["max_body_bytes"] == 2048
        assert client.post("/infer", content=_padded(2049)).status_code == 413
        assert client.post("/infer", content=_padded(2048)).status_code == 200
