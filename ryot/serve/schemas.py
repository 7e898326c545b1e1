"""POST /infer's request: one pydantic model per server, so the schema it publishes is its rule.

The model is built from the served model's vocabulary and context and the server's max batch,
so every bound a client can check (ids, prompt count and length, max_new_tokens, top_k) is in
/openapi.json as a JSON-schema bound and is enforced by the same model. The one rule JSON Schema
cannot say, that a prompt plus its answer must fit the context, is `check_context`: a 422 the
schema documents. Any 422 names the field in one line.

Integers follow JSON Schema, where 24.0 is the integer 24: an integral number is taken as that
integer, while 1.5, "7" and true are not integers. Unknown keys are rejected, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, create_model

MAX_TEMPERATURE = 100.0  # beyond this sampling is uniform noise; a larger value is a mistake
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed; seed + row stays in it
DEFAULT_MAX_NEW_TOKENS = 16


@dataclass(frozen=True)
class Limits:
    vocab_size: int
    max_seq_len: int
    max_prompts: int  # the server's max batch: one request never splits across batches


class RequestProblem(ValueError):
    """A request that breaks a rule the schema cannot state: answered 422 naming the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" is any number with a zero fractional part, so 24.0 must pass
    # wherever the schema says integer; bool is left to Strict(), which refuses it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _integer(low: int, high: int) -> Any:
    return Annotated[int, Strict(), Ge(low), Le(high), BeforeValidator(_integral)]


class InferRequest(BaseModel):
    """The fields every server's request model has; `request_model` adds the bounds."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompts: list[list[int]]
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_k: int | None = None
    seed: int | None = None


def request_model(limits: Limits) -> type[InferRequest]:
    """InferRequest with this server's bounds, for validation and for /openapi.json alike."""
    context = limits.max_seq_len
    token = _integer(0, limits.vocab_size - 1)
    prompt = Annotated[list[token], MinLen(1), MaxLen(context - 1)]
    # The default must fit the model it is published for, or the schema would contradict itself.
    default_new = min(DEFAULT_MAX_NEW_TOKENS, context - 1)
    return create_model(
        "InferRequest",
        __base__=InferRequest,
        prompts=(
            Annotated[list[prompt], MinLen(1), MaxLen(limits.max_prompts)],
            Field(
                description="Prompts as lists of token ids, decoded together. Each prompt plus "
                f"max_new_tokens must fit the model's context of {context} tokens, which JSON "
                "Schema cannot say: a prompt past it is answered 422 naming prompts[i]."
            ),
        ),
        max_new_tokens=(
            _integer(1, context - 1),
            Field(default_new, description="New tokens per prompt (see prompts: the context)."),
        ),
        temperature=(
            Annotated[float, Strict(), Ge(0.0), Le(MAX_TEMPERATURE)],
            Field(0.0, description="0 is greedy; any positive value samples, however small."),
        ),
        top_k=(
            _integer(1, limits.vocab_size) | None,
            Field(None, description="Sample among the k likeliest tokens (null: all)."),
        ),
        seed=(
            _integer(0, MAX_SEED) | None,
            Field(None, description="Prompt i samples with seed + i: same seed, same output."),
        ),
    )


def check_context(req: InferRequest, limits: Limits) -> None:
    """Raise RequestProblem for the first prompt whose answer would not fit the context."""
    n = req.max_new_tokens
    for i, prompt in enumerate(req.prompts):
        # Policy past the context: refuse, never truncate silently. Positions are absolute
        # (Ryot's sinusoidal, 0..max_seq_len-1; a factory model's may be a learned table), so a
        # sliding window would shift every token's position and give a different model than
        # the one that was trained and judged.
        if len(prompt) + n > limits.max_seq_len:
            raise RequestProblem(
                f"prompts[{i}]",
                f"{len(prompt)} tokens + max_new_tokens {n} exceed the model's context of "
                f"{limits.max_seq_len}",
            )


def field_name(loc: tuple | list) -> str:
    """pydantic's error location ('body', 'prompts', 0, 1) -> 'prompts[0][1]'."""
    parts = [p for p in loc if p != "body"]
    if not parts or not isinstance(parts[0], str):
        return "body"  # the body itself: malformed JSON, not an object, missing
    name = parts[0]
    for part in parts[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def describe(error: dict) -> tuple[str, str]:
    """One pydantic error -> (field, one-line message), e.g. ('prompts[0][0]', '... got 1.5')."""
    message = str(error.get("msg", "invalid"))
    value = error.get("input")
    # A short scalar says what was sent; a list or a long string would not. Floats by repr:
    # inf, not JSON's Infinity.
    if isinstance(value, (int, float, str, bool)) and len(repr(value)) <= 40:
        message += f", got {repr(value) if isinstance(value, float) else json.dumps(value)}"
    return field_name(error.get("loc", ())), message
