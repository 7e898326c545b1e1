"""The app in-process (FastAPI's TestClient): /infer, every bad input, /health, /metrics; Ryot's
model (KV-cached) and a model of one's own (model.factory, no cache)."""

from __future__ import annotations

import asyncio
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from ryot.serve.app import create_app
from ryot.serve.bad_input import bad_requests
from ryot.serve.batcher import Batcher
from ryot.serve.generate import Row, generate
from ryot.serve.schemas import Limits
from ryot.serve.served_run import load_model, read_verdict
from tests.serve_support import TINY_GPT, make_run_dir

MAX_BATCH = 4

with warnings.catch_warnings():
    # Starlette's TestClient asks for its httpx fork; the httpx installed here works with it.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served(run_dir):
    return load_model(run_dir, "optimized", torch.device("cpu"))


@pytest.fixture(scope="module")
def client(run_dir, served):
    app = create_app(served, read_verdict(run_dir), max_batch=MAX_BATCH, max_wait_ms=1)
    with TestClient(app) as test_client:  # runs the lifespan: the batcher is up
        yield test_client


def test_infer_answers_completions_logprobs_and_timing(client, served):
    answer = client.post("/infer", json={"prompts": [[1, 2, 3], [4]], "max_new_tokens": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [len(c) for c in body["completions"]] == [5, 5]
    assert all(0 <= t < served.config.model.vocab_size for c in body["completions"] for t in c)
    assert all(lp <= 0 for row in body["logprobs"] for lp in row)
    alone = generate(served.model, [Row((4,), 5)]).rows[0]
    assert body["completions"][1] == alone.tokens
    timing = body["timing"]
    assert timing["batch_rows"] >= 2 and timing["new_tokens"] == 10 and timing["total_ms"] > 0


def test_seeded_sampling_repeats_and_greedy_is_the_default(client):
    body = {"prompts": [[5, 6]], "max_new_tokens": 12, "temperature": 1.0, "seed": 3}
    first = client.post("/infer", json=body).json()["completions"]
    assert client.post("/infer", json=body).json()["completions"] == first
    greedy = {"prompts": [[5, 6]], "max_new_tokens": 12}
    assert client.post("/infer", json=greedy).json() != first


BAD = bad_requests(Limits(vocab_size=64, max_seq_len=32, max_prompts=MAX_BATCH))


@pytest.mark.parametrize("case", sorted(BAD))
def test_every_bad_input_class_is_422_naming_the_field(client, case):
    body, field = BAD[case]
    answer = client.post("/infer", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["error"].startswith(f"{field}: ")
    # and the server keeps serving
    assert client.post("/infer", json={"prompts": [[1]], "max_new_tokens": 1}).status_code == 200


def test_form_encoded_json_from_curl_is_still_json(client):
    answer = client.post("/infer", content='{"prompts": [[1, 2]], "max_new_tokens": 2}',
                         headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert answer.status_code == 200, answer.text


def test_health_names_model_checkpoint_verdict_and_device(client, served, run_dir):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["parameters"] == served.num_parameters == served.model.count_parameters()
    assert health["checkpoint"]["sha256"] == served.sha256 and len(served.sha256) == 64
    assert health["checkpoint"]["path"] == str(run_dir / "checkpoints" / "optimized.pt")
    assert health["run"]["verdict"] == "GO" and health["run"]["speedup_percent"] == 31.5
    assert health["run"]["matched_loss_speedup_percent"] == 27.0  # schema 3.0's, upgraded
    assert health["run"]["serving_without_go"] is False
    assert health["device"] == "cpu" and health["uptime_s"] >= 0
    assert health["model"]["vocab_size"] == 64
    assert health["model"]["name"] == "ScaledTransformerModel"
    assert health["model"]["kv_cache"] is True and health["model"]["factory"] == ""
    assert health["model"]["embed_dim"] == served.config.model.embed_dim


@pytest.fixture(scope="module")
def tiny_gpt_client(tmp_path_factory):
    """A model of one's own (tests/workloads/tiny_gpt.py through model.factory): no KV cache."""
    run = make_run_dir(tmp_path_factory.mktemp("tiny-gpt"), config_path=TINY_GPT)
    served = load_model(run, "optimized", torch.device("cpu"))
    app = create_app(served, read_verdict(run), max_batch=8, max_wait_ms=1000)
    with TestClient(app) as test_client:
        yield test_client, served


def test_health_of_a_factory_model_says_it_decodes_without_a_cache(tiny_gpt_client):
    client, served = tiny_gpt_client
    model = client.get("/health").json()["model"]
    assert model["name"] == model["factory"] == "tests.workloads.tiny_gpt:build"
    assert model["kv_cache"] is False
    assert model["factory_kwargs"] == {"width": 32, "heads": 2, "layers": 4}
    assert (model["vocab_size"], model["max_seq_len"]) == (64, 32)
    # the keys only Ryot's model reads say nothing about this one
    assert all(model[key] is None for key in ("embed_dim", "num_heads", "num_layers", "ff_dim",
                                              "dropout"))  # fmt: skip
    assert client.get("/health").json()["parameters"] == served.num_parameters
    summary = client.get("/openapi.json").json()["info"]["summary"]
    assert "tests.workloads.tiny_gpt:build, decoded without a KV cache" in summary


def test_a_factory_model_answers_each_request_as_if_alone(tiny_gpt_client):
    """Requests of different prompt lengths decoded together give each its tokens alone."""
    client, served = tiny_gpt_client
    bodies = [{"prompts": [list(range(1, n + 1))], "max_new_tokens": 8} for n in (1, 3, 3, 7, 20)]
    answers = _concurrently(client, bodies)
    assert [a.status_code for a in answers] == [200] * 5, [a.text[:200] for a in answers]
    assert max(a.json()["timing"]["batch_rows"] for a in answers) > 1
    for body, answer in zip(bodies, answers, strict=True):
        alone = generate(served.model, [Row(tuple(body["prompts"][0]), 8)], 32).rows[0]
        assert answer.json()["completions"] == [alone.tokens]
        assert answer.json()["logprobs"][0] == pytest.approx(alone.logprobs, abs=1e-4)
    past = client.post("/infer", json={"prompts": [[1] * 30], "max_new_tokens": 3})
    assert past.status_code == 422 and past.json()["field"] == "prompts[0]"


def test_metrics_are_prometheus_text_counting_requests_batches_and_tokens(client):
    client.post("/infer", json={"prompts": [[1, 2]], "max_new_tokens": 3})
    client.post("/infer", content="{")
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    names = ("ryot_requests_total", "ryot_request_latency_seconds_bucket", "ryot_batch_size_bucket",
             "ryot_tokens_generated_total", "ryot_queue_depth")  # fmt: skip
    for name in names:
        assert f"\n{name}" in text, name
    assert 'ryot_requests_total{endpoint="/infer",status="422"}' in text
    assert 'ryot_requests_total{endpoint="/infer",status="200"}' in text


def test_unknown_paths_share_one_metrics_label(client):
    assert client.get("/nope/123").status_code == 404
    assert 'endpoint="other",status="404"' in client.get("/metrics").text
    assert "/nope/123" not in client.get("/metrics").text


def test_draining_refuses_new_requests_with_503(run_dir, served):
    app = create_app(served, read_verdict(run_dir), max_batch=MAX_BATCH)
    with TestClient(app) as client:
        app.state.start_draining()
        answer = client.post("/infer", json={"prompts": [[1]], "max_new_tokens": 1})
        assert answer.status_code == 503 and answer.json()["field"] == "server"
        assert client.get("/health").json()["status"] == "draining"


def test_batcher_decodes_concurrent_requests_together_and_splits_at_max_batch(served):
    seen: list[int] = []

    def decode(rows):
        seen.append(len(rows))
        return generate(served.model, rows)

    async def main():
        batcher = Batcher(decode, max_batch=4, max_wait_s=0.5)
        batcher.start()
        try:
            jobs = [[Row((i + 1,), 3)] for i in range(3)] + [[Row((9,), 3), Row((8, 7), 2)]]
            return await asyncio.gather(*(batcher.submit(rows) for rows in jobs))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    # 3 single rows fill 3 of 4 slots; the 2-row request does not fit and waits for the next.
    assert seen == [3, 2]
    assert [r.batch_rows for r in results] == [3, 3, 3, 2]
    last = results[3].batch.rows[results[3].first : results[3].first + 2]
    assert [len(r.tokens) for r in last] == [3, 2]
    assert last[0].tokens == generate(served.model, [Row((9,), 3)]).rows[0].tokens


def _concurrently(client, bodies: list[dict]) -> list:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: client.post("/infer", json=body), bodies))


@pytest.fixture
def batching_client(run_dir, served):
    """Eight requests at once decode as one batch: the batch waits up to 1 s to fill."""
    app = create_app(served, read_verdict(run_dir), max_batch=8, max_wait_ms=1000)
    with TestClient(app) as test_client:
        yield test_client


def test_a_tiny_temperature_beside_seven_valid_requests_is_answered_like_them(batching_client):
    valid = [{"prompts": [[i + 1, 25]], "max_new_tokens": 4} for i in range(7)]
    tiny = {"prompts": [[25]], "max_new_tokens": 4, "temperature": 1e-40}
    answers = _concurrently(batching_client, valid + [tiny])
    assert [a.status_code for a in answers] == [200] * 8, [a.text[:200] for a in answers]
    assert max(a.json()["timing"]["batch_rows"] for a in answers) > 1
    greedy = batching_client.post("/infer", json={"prompts": [[25]], "max_new_tokens": 4})
    assert answers[-1].json()["completions"] == greedy.json()["completions"]


def test_a_request_whose_decoding_fails_fails_alone(batching_client, monkeypatch):
    """A defect in one request's rows (here injected) answers 500 to it and 200 to the rest."""
    import ryot.serve.app as app_module

    poison, seen = (13, 13, 13), []

    def poisoned(model, rows, max_seq_len):
        seen.append(len(rows))
        if any(r.prompt == poison for r in rows):
            raise RuntimeError("poisoned row")
        return generate(model, rows, max_seq_len)

    monkeypatch.setattr(app_module, "generate", poisoned)
    bodies = [{"prompts": [[i + 1]], "max_new_tokens": 3} for i in range(7)]
    bodies.insert(2, {"prompts": [list(poison)], "max_new_tokens": 3})
    answers = _concurrently(batching_client, bodies)
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 500] + [200] * 5, [a.text[:200] for a in answers]
    assert answers[2].json()["field"] == "server" and "poisoned row" in answers[2].json()["error"]
    assert seen[0] > 1, f"the poisoned request was never batched with the others: {seen}"
    metrics = batching_client.get("/metrics").text
    assert 'ryot_requests_total{endpoint="/infer",status="500"} 1.0' in metrics
