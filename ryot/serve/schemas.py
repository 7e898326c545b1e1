"""POST /infer's request and its checks against the served model: a 422 names the field.

Types are strict (3.0 or "3" is not a token id, true is not a number) and unknown keys are
rejected, so a typo never silently falls back to a default. Ranges that depend on the model
(vocabulary, context) are checked after parsing, by `check_request`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt

MAX_TEMPERATURE = 100.0  # beyond this sampling is uniform noise; a larger value is a mistake
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompts: list[list[StrictInt]]
    max_new_tokens: StrictInt = 16
    temperature: StrictFloat = 0.0  # strict still takes an integer such as 1
    top_k: StrictInt | None = None
    seed: StrictInt | None = None


class InferResponse(BaseModel):
    completions: list[list[int]]
    logprobs: list[list[float]]
    timing: dict[str, float | int]


@dataclass(frozen=True)
class Limits:
    vocab_size: int
    max_seq_len: int
    max_prompts: int  # the server's max batch: one request never splits across batches


class RequestProblem(ValueError):
    """A request field out of range: answered 422 with the field's name."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_request(req: InferRequest, limits: Limits) -> None:
    """Raise RequestProblem for the first field out of range for this model and server."""
    if not req.prompts:
        raise RequestProblem("prompts", "must hold at least one prompt")
    if len(req.prompts) > limits.max_prompts:
        raise RequestProblem(
            "prompts", f"{len(req.prompts)} prompts, at most {limits.max_prompts} per request"
        )
    n = req.max_new_tokens
    if not 1 <= n <= limits.max_seq_len - 1:
        raise RequestProblem(
            "max_new_tokens", f"{n} is outside [1, {limits.max_seq_len - 1}] for this model"
        )
    for i, prompt in enumerate(req.prompts):
        if not prompt:
            raise RequestProblem(f"prompts[{i}]", "is empty: give at least one token id")
        # Policy past the context: refuse, never truncate silently. Positions are absolute
        # (sinusoidal, 0..max_seq_len-1), so a sliding window would shift every token's
        # position and give a different model than the one that was trained and judged.
        if len(prompt) + n > limits.max_seq_len:
            raise RequestProblem(
                f"prompts[{i}]",
                f"{len(prompt)} tokens + max_new_tokens {n} exceed the model's context of "
                f"{limits.max_seq_len}",
            )
        for j, token in enumerate(prompt):
            if not 0 <= token < limits.vocab_size:
                raise RequestProblem(
                    f"prompts[{i}][{j}]", f"token id {token} is outside [0, {limits.vocab_size})"
                )
    if not 0.0 <= req.temperature <= MAX_TEMPERATURE:
        raise RequestProblem(
            "temperature", f"{req.temperature} is outside [0, {MAX_TEMPERATURE:g}] (0: greedy)"
        )
    if req.top_k is not None and not 1 <= req.top_k <= limits.vocab_size:
        raise RequestProblem("top_k", f"{req.top_k} is outside [1, {limits.vocab_size}]")
    if req.seed is not None and not 0 <= req.seed <= MAX_SEED:
        raise RequestProblem("seed", f"{req.seed} is outside [0, 2**63 - 1]")


def field_name(loc: tuple | list) -> str:
    """pydantic's error location ('body', 'prompts', 0, 1) -> 'prompts[0][1]'."""
    parts = [p for p in loc if p != "body"]
    if not parts or not isinstance(parts[0], str):
        return "body"  # the body itself: malformed JSON, not an object, missing
    name = parts[0]
    for part in parts[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name
