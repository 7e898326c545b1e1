"""/openapi.json is the contract: schemathesis fuzzes the real server against it, every check on.

Each endpoint gets schema-valid (positive) and schema-violating (negative) requests from a fixed
seed and a bounded number of examples, and every answer must keep the schema's promises: no 5xx,
the documented status codes, content types and bodies, valid data accepted, invalid refused.

The one rule JSON Schema cannot state is the context (a prompt plus max_new_tokens must fit the
model's max_seq_len), documented in the schema as a 422. So a schema-valid request may get 422,
and this test then proves that the context, and nothing else, refused it.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from schemathesis.config import PositiveDataAcceptanceConfig, SchemathesisConfig

from ryot.serve.schemas import DEFAULT_MAX_NEW_TOKENS

SEED = 1
MAX_EXAMPLES = 150  # per endpoint, in the fuzzing phase; the coverage phase adds its own
REQUEST_TIMEOUT_S = 30

_CASES: Counter[str] = Counter()


def fuzz_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "request-timeout": REQUEST_TIMEOUT_S,
            # Every built-in check is on by default; none is switched off here.
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": [*PositiveDataAcceptanceConfig().expected_statuses, "422"]
                }
            },
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        }
    )


@pytest.fixture(scope="session")
def api_schema(server, stage3b):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=fuzz_config())
    stage3b.data["schema_fuzz"] = {"seed": SEED, "max_examples": MAX_EXAMPLES, "cases": _CASES}
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    # schemathesis 4.32 reads the test node's private `_nodeid`, which pytest 9.2 renamed; it
    # only labels its sub-tests with it, so the node's public id is all it needs.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _context_refused(body: dict, answer: dict, max_seq_len: int) -> bool:
    """True when a 422 names the prompt that, with max_new_tokens, overflows the context."""
    field = answer.get("field", "")
    if not (field.startswith("prompts[") and field.endswith("]") and field[8:-1].isdigit()):
        return False
    prompt = body["prompts"][int(field[8:-1])]
    new = body.get("max_new_tokens", min(DEFAULT_MAX_NEW_TOKENS, max_seq_len - 1))
    return len(prompt) + new > max_seq_len


@schema.parametrize()
def test_every_endpoint_keeps_its_schema(case, stage3b):
    response = case.call_and_validate()
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    _CASES[f"{case.method} {case.path} {mode} {response.status_code}"] += 1
    if mode == "positive" and response.status_code == 422:
        limits = stage3b.data["health"]["limits"]
        assert _context_refused(case.body, response.json(), limits["max_seq_len"]), (
            f"a schema-valid request was refused for another reason than the context: "
            f"{response.text[:300]} (body {str(case.body)[:300]})"
        )
