"""/openapi.json is the contract: it states each endpoint's request and answers, and the server
keeps to it (what it publishes as valid it accepts, integers as JSON Schema means them)."""

from __future__ import annotations

import warnings

import jsonschema
import pytest
import torch

from ryot.serve.app import create_app
from ryot.serve.schemas import MAX_SEED
from ryot.serve.served_run import load_model, read_verdict
from tests.serve_support import TINY_GPT, make_run_dir

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

MAX_BATCH = 4


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    run_dir = make_run_dir(tmp_path_factory.mktemp("served"))
    served = load_model(run_dir, "optimized", torch.device("cpu"))
    app = create_app(served, read_verdict(run_dir), max_batch=MAX_BATCH, max_wait_ms=1)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client):
    return client.get("/openapi.json").json()


def _validate(openapi: dict, schema: dict, value) -> None:
    """jsonschema validation of `value`, with the document's components for its $refs."""
    ref = schema.get("$ref")
    if ref:
        schema = {"$ref": ref, "components": openapi["components"]}
    jsonschema.Draft202012Validator(schema).validate(value)


def test_infer_request_states_this_servers_bounds(openapi):
    body = openapi["paths"]["/infer"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["prompts"]
    props = schema["properties"]
    prompts = props["prompts"]
    assert (prompts["minItems"], prompts["maxItems"]) == (1, MAX_BATCH)
    assert (prompts["items"]["minItems"], prompts["items"]["maxItems"]) == (1, 31)  # context 32
    assert prompts["items"]["items"] == {"type": "integer", "minimum": 0, "maximum": 63}
    assert "context" in prompts["description"] and "422" in prompts["description"]
    n = props["max_new_tokens"]
    assert (n["type"], n["minimum"], n["maximum"], n["default"]) == ("integer", 1, 31, 16)
    t = props["temperature"]
    assert (t["type"], t["minimum"], t["maximum"]) == ("number", 0, 100)
    seed = props["seed"]["anyOf"][0]
    # Exactly 2**63 - 1: FastAPI's own models would have rounded it to the float 2**63.
    assert seed["maximum"] == MAX_SEED and isinstance(seed["maximum"], int)


def test_every_endpoint_documents_its_answers(openapi):
    infer = openapi["paths"]["/infer"]["post"]["responses"]
    assert set(infer) == {"200", "413", "422", "500", "503"}
    for status in ("413", "422", "500", "503"):
        ref = infer[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorResponse", status
    assert "context" in infer["422"]["description"]
    error = openapi["components"]["schemas"]["ErrorResponse"]
    assert set(error["required"]) == {"error", "field"}
    health = openapi["paths"]["/health"]["get"]["responses"]["200"]["content"]
    assert health["application/json"]["schema"]["$ref"] == "#/components/schemas/HealthResponse"
    metrics = openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_answers_validate_against_the_published_schemas(client, openapi):
    paths = openapi["paths"]
    answer = client.post("/infer", json={"prompts": [[1, 2], [3]], "max_new_tokens": 3})
    assert answer.status_code == 200
    _validate(openapi, paths["/infer"]["post"]["responses"]["200"]["content"]["application/json"]
              ["schema"], answer.json())  # fmt: skip
    refused = client.post("/infer", json={"prompts": [[64]]})
    assert refused.status_code == 422
    _validate(openapi, paths["/infer"]["post"]["responses"]["422"]["content"]["application/json"]
              ["schema"], refused.json())  # fmt: skip
    health = client.get("/health")
    _validate(openapi, paths["/health"]["get"]["responses"]["200"]["content"]["application/json"]
              ["schema"], health.json())  # fmt: skip
    assert health.json()["limits"]["max_body_bytes"] == 1 << 20  # the snapshot's default
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].split(";")[0] == "text/plain"


def test_a_factory_models_health_validates_against_its_schema(tmp_path):
    """A model of one's own: kv_cache false, the keys only Ryot's model reads null."""
    run_dir = make_run_dir(tmp_path / "run", config_path=TINY_GPT)
    served = load_model(run_dir, "optimized", torch.device("cpu"))
    with TestClient(create_app(served, read_verdict(run_dir), max_batch=MAX_BATCH)) as client:
        openapi = client.get("/openapi.json").json()
        health = client.get("/health").json()
    _validate(openapi, openapi["paths"]["/health"]["get"]["responses"]["200"]["content"]
              ["application/json"]["schema"], health)  # fmt: skip
    assert health["model"]["kv_cache"] is False and health["model"]["embed_dim"] is None
    model = openapi["components"]["schemas"]["ModelInfo"]
    assert (
        "kv_cache" in model["required"]
        and "full forward" in (model["properties"]["kv_cache"]["description"])
    )


def test_the_largest_published_values_are_accepted(client, openapi):
    body = {"prompts": [[63] * 16] * MAX_BATCH, "max_new_tokens": 16, "temperature": 100,
            "top_k": 64, "seed": MAX_SEED}  # fmt: skip
    schema = openapi["paths"]["/infer"]["post"]["requestBody"]["content"]["application/json"]
    jsonschema.Draft202012Validator(schema["schema"]).validate(body)
    answer = client.post("/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert [len(c) for c in answer.json()["completions"]] == [16] * MAX_BATCH


def test_integral_numbers_are_integers_as_in_json_schema(client):
    """24.0 is the integer 24 to JSON Schema, so the server takes it as 24; 1.5 is refused."""
    as_float = client.post("/infer", content='{"prompts": [[24.0, 3]], "max_new_tokens": 4.0}')
    as_int = client.post("/infer", json={"prompts": [[24, 3]], "max_new_tokens": 4})
    assert as_float.status_code == 200, as_float.text
    assert as_float.json()["completions"] == as_int.json()["completions"]
    refused = client.post("/infer", content='{"prompts": [[24.5]]}')
    assert refused.status_code == 422 and refused.json()["field"] == "prompts[0][0]"
    assert refused.json()["error"].endswith("got 24.5")


def test_unknown_method_and_path_answer_in_the_error_shape(client):
    wrong = client.put("/infer")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["field"] == "method"
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["field"] == "path"
