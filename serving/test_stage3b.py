"""Stage 3b criteria, one test each, on a real `ryot serve` process (see conftest.py)."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ryot.serve.bad_input import bad_requests
from ryot.serve.loadstats import judge_load
from ryot.serve.schemas import Limits
from serving.load import prompts, run_phase

# Class names only; the bodies depend on the served model and are built from its /health.
BAD_INPUT_CLASSES = sorted(bad_requests(Limits(vocab_size=2, max_seq_len=2, max_prompts=1)))
LOGPROB_TOLERANCE = 1e-4  # batched matrix products round differently; ids must not change
README = Path(__file__).resolve().parents[1] / "README.md"


def _limits(health: dict) -> Limits:
    limits = health["limits"]
    return Limits(limits["vocab_size"], limits["max_seq_len"], limits["max_batch"])


@pytest.fixture(scope="session")
def load(server, served_run, stage3b):
    """Warm up, then one sequential phase and one concurrent phase of the same requests."""
    _, _, serving = served_run
    limits = _limits(stage3b.data["health"])
    if serving.prompt_len + serving.max_new_tokens > limits.max_seq_len:
        pytest.fail(
            f"serving.prompt_len + max_new_tokens = {serving.prompt_len + serving.max_new_tokens}"
            f" exceeds the model's max_seq_len {limits.max_seq_len}"
        )
    count = max(serving.requests, serving.sequential_requests, serving.max_batch)
    bodies = [
        {"prompts": [p], "max_new_tokens": serving.max_new_tokens}
        for p in prompts(count, serving.prompt_len, limits.vocab_size, seed=3)
    ]
    limit = serving.time_limit_s
    run_phase(server.url, bodies[:2], 1, limit)  # first calls pay one-time costs
    run_phase(server.url, bodies[: serving.max_batch], serving.max_batch, limit)
    sequential = run_phase(server.url, bodies[: serving.sequential_requests], 1, limit)
    concurrent = run_phase(server.url, bodies[: serving.requests], serving.concurrency, limit)
    criteria = {c.name: c for c in judge_load(concurrent.summary, sequential.summary, serving)}
    stage3b.data["load"] = {
        "sequential": dataclasses.asdict(sequential.summary),
        "concurrent": dataclasses.asdict(concurrent.summary),
        "errors": (sequential.errors() + concurrent.errors())[:10],
    }
    for name, criterion in criteria.items():
        stage3b.data["criteria"][name] = criterion.to_dict()
    return criteria


@pytest.mark.parametrize(
    "name", ["no_errors_under_load", "p50_latency", "p99_latency", "tokens_per_second",
             "batching_gain"],
)  # fmt: skip
def test_load_criterion(load, name):
    criterion = load[name]
    assert criterion.passed, criterion.detail


def test_batched_outputs_equal_unbatched(server, served_run, stage3b):
    """Prompts of different lengths, each alone, then all at once: identical greedy ids."""
    _, _, serving = served_run
    limits = _limits(stage3b.data["health"])
    count = min(serving.max_batch, 8)
    new = min(serving.max_new_tokens, limits.max_seq_len // 2)
    longest = limits.max_seq_len - new
    lengths = [1 + (i * (longest - 1)) // max(count - 1, 1) for i in range(count)]
    bodies = [
        {"prompts": prompts(1, n, limits.vocab_size, seed=100 + i), "max_new_tokens": new}
        for i, n in enumerate(lengths)
    ]
    alone = [run_phase(server.url, [b], 1, serving.time_limit_s).answers[0] for b in bodies]
    together = run_phase(server.url, bodies, count, serving.time_limit_s).answers
    assert all(a.status == 200 for a in alone + together), [a.error for a in alone + together]
    rows = [a.body["timing"]["batch_rows"] for a in together]
    id_mismatch = [
        i for i, (a, b) in enumerate(zip(alone, together, strict=True))
        if a.body["completions"] != b.body["completions"]
    ]  # fmt: skip
    gap = max(
        abs(x - y)
        for a, b in zip(alone, together, strict=True)
        for x, y in zip(a.body["logprobs"][0], b.body["logprobs"][0], strict=True)
    )
    stage3b.data["criteria"]["batched_equals_unbatched"] = {
        "name": "batched_equals_unbatched",
        "passed": not id_mismatch and gap <= LOGPROB_TOLERANCE and max(rows) > 1,
        "value": gap,
        "threshold": LOGPROB_TOLERANCE,
        "detail": f"{count} prompts of {min(lengths)}..{max(lengths)} tokens, {new} new each; "
        f"decoded in batches of up to {max(rows)}; ids differ in {len(id_mismatch)}; "
        f"largest logprob gap {gap:.2e}",
    }
    assert max(rows) > 1, f"the concurrent requests were never batched together: {rows}"
    assert not id_mismatch, f"greedy ids differ batched vs alone for prompts {id_mismatch}"
    assert gap <= LOGPROB_TOLERANCE, f"logprobs differ by {gap:.2e} batched vs alone"


@pytest.mark.parametrize("case", BAD_INPUT_CLASSES)
def test_bad_input_is_4xx_and_server_stays_healthy(server, stage3b, case):
    body, field = bad_requests(_limits(stage3b.data["health"]))[case]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/infer", content=body, headers={"content-type": "application/json"})
        health = client.get("/health")
        after = client.post("/infer", json={"prompts": [[1, 2]], "max_new_tokens": 1})
    stage3b.data["bad_input"][case] = {"status": answer.status_code, "expected_field": field}
    assert 400 <= answer.status_code < 500, f"{case}: {answer.status_code} {answer.text[:200]}"
    assert answer.json().get("field") == field, answer.text[:200]
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert after.status_code == 200 and len(after.json()["completions"][0]) == 1


def _documented_metrics() -> dict[str, str]:
    """README's "Reading /metrics" table: metric family name -> type."""
    documented = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(ryot_\w+)[`{].*?\| (counter|gauge|histogram) \|", line)
        if match:
            name, kind = match.groups()
            documented[name.removesuffix("_total") if kind == "counter" else name] = kind
    assert documented, f"{README}: no metrics table found"
    return documented


def test_metrics_parse_and_count_what_was_served(server, load):
    """After the load, /metrics parses as Prometheus text, holds exactly the documented series
    with their types, and counts the requests, batches and tokens served."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # prometheus_client adds a `<name>_created` gauge (the series' start time) beside each
    # counter and histogram: part of the format, not a series of ours to document.
    served = {name: f.type for name, f in families.items()
              if name.startswith("ryot_") and not name.endswith("_created")}  # fmt: skip
    assert served == _documented_metrics()
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in families.values() for s in f.samples}  # fmt: skip
    assert values[("ryot_requests_total", (("endpoint", "/infer"), ("status", "200")))] > 0
    assert values[("ryot_batch_size_count", ())] > 0
    assert values[("ryot_batch_size_sum", ())] / values[("ryot_batch_size_count", ())] > 1
    assert values[("ryot_tokens_generated_total", ())] > 0
    assert math.isfinite(values[("ryot_queue_depth", ())])
    latency = ("endpoint", "/infer")
    buckets = [v for (name, labels), v in values.items()
               if name == "ryot_request_latency_seconds_bucket" and latency in labels]  # fmt: skip
    count = values[("ryot_request_latency_seconds_count", (latency,))]
    assert buckets and max(buckets) == count  # the +Inf bucket holds every request
