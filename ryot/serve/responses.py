"""What the server answers, as pydantic models: /openapi.json publishes them, FastAPI checks them.

Every error, whatever its status, has one shape: {"error": "<field>: <what is wrong>",
"field": "<field>"}, so a client (or a person with curl) sees in one line what to fix.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel, Field, create_model

from ryot.config import RYOT_MODEL_KEYS, ModelConfig


class ErrorResponse(BaseModel):
    error: str = Field(description="One line: the field, a colon, what is wrong with it.")
    field: str = Field(
        description="The request part to fix: a body field such as prompts[0][1], or body, "
        "method, path, server."
    )


class Timing(BaseModel):
    queue_ms: float = Field(description="Waiting for a decode batch.")
    prefill_ms: float = Field(description="The batch's prompt forward pass (its first step).")
    decode_ms: float = Field(description="The batch's other decode steps.")
    total_ms: float = Field(description="From the parsed request to the answer.")
    batch_rows: int = Field(description="Prompts decoded together with this request's.")
    decode_steps: int = Field(description="Decode steps the batch ran (its longest answer).")
    new_tokens: int = Field(description="Tokens returned to this request.")


class InferResponse(BaseModel):
    completions: list[list[int]] = Field(description="New token ids, one list per prompt.")
    logprobs: list[list[float]] = Field(
        description="The model's natural-log probability of each returned token, before "
        "temperature and top-k."
    )
    timing: Timing


# The keys only Ryot's own model reads: null for a model of one's own (model.factory).
_OPTIONAL = set(RYOT_MODEL_KEYS)

# The model's constructor arguments, from ModelConfig itself so the two never drift apart.
ModelInfo = create_model(
    "ModelInfo",
    name=(
        str,
        Field(description="ScaledTransformerModel (Ryot's), or the run's model.factory spec."),
    ),
    kv_cache=(
        bool,
        Field(
            description="true: decoded with Ryot's KV cache. false: a model of one's own has "
            "no cache, so each new token runs its full forward over the prompt and the tokens "
            "so far (slower per token as the answer grows; the same tokens)."
        ),
    ),
    **{
        name: ((tp | None) if name in _OPTIONAL else tp, ...)
        for name, tp in typing.get_type_hints(ModelConfig).items()
    },
)


class CheckpointInfo(BaseModel):
    path: str
    sha256: str
    arm: str


class RunInfo(BaseModel):
    verdict: str = Field(description="The Stage 3a verdict of the served run: GO, ...")
    speedup_percent: float | None
    matched_loss_speedup_percent: float | None
    serving_without_go: bool
    allow_no_go: bool


class ServerLimits(BaseModel):
    max_batch: int = Field(description="Most prompts per request and per decode batch.")
    max_wait_ms: float
    max_seq_len: int = Field(description="The context: a prompt plus its answer fit in it.")
    vocab_size: int = Field(description="Token ids are in [0, vocab_size).")
    max_body_bytes: int = Field(description="A larger request body is answered 413.")


class HealthResponse(BaseModel):
    status: str = Field(description="ok, or draining after SIGTERM.")
    model: ModelInfo  # type: ignore[valid-type]
    parameters: int
    checkpoint: CheckpointInfo
    run: RunInfo
    device: str
    uptime_s: float
    limits: ServerLimits


def error_responses(*statuses: int) -> dict[int, dict]:
    """FastAPI `responses=` documenting each status as an ErrorResponse, with what it means."""
    meaning = {
        404: "No such path.",
        405: "The path does not take this method.",
        413: "The body is larger than the server's max_body_bytes (see /health limits); "
        "answered before the body is read whole.",
        422: "A field is invalid: the schema's bounds, or a prompt plus max_new_tokens past "
        "the model's context, which the schema cannot state.",
        500: "Decoding failed: a server defect, never the request's fault. Only the failing "
        "request gets it; requests batched with it are decoded again without it.",
        503: "Shutting down (SIGTERM): not taking new requests.",
    }
    return {s: {"model": ErrorResponse, "description": meaning[s]} for s in statuses}
