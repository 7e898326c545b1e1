"""Every class of bad /infer input, with the field its 422 must name.

One table for the unit tests and the Stage 3b suite, so both prove the same classes.
"""

from __future__ import annotations

import json

from ryot.serve.schemas import Limits


def bad_requests(limits: Limits) -> dict[str, tuple[str | bytes, str]]:
    """Class name -> (raw request body, field the answer must name)."""
    ok = [1, 2, 3]

    def body(**fields) -> str:
        return json.dumps({"prompts": [ok], "max_new_tokens": 2} | fields)

    return {
        "id_at_vocab_size": (body(prompts=[[1, limits.vocab_size]]), "prompts[0][1]"),
        "negative_id": (body(prompts=[[-1]]), "prompts[0][0]"),
        "empty_prompt_list": (body(prompts=[]), "prompts"),
        "empty_prompt": (body(prompts=[ok, []]), "prompts[1]"),
        "float_id": (body(prompts=[[1.5]]), "prompts[0][0]"),
        "string_id": (body(prompts=[["7"]]), "prompts[0][0]"),
        "bool_id": (body(prompts=[[True]]), "prompts[0][0]"),
        "prompt_not_a_list": (body(prompts=[5]), "prompts[0]"),
        "too_many_prompts": (body(prompts=[ok] * (limits.max_prompts + 1)), "prompts"),
        "past_context": (body(prompts=[[1] * limits.max_seq_len]), "prompts[0]"),
        # Each prompt fits the schema's bounds; with its answer it does not fit the context.
        "answer_past_context": (
            body(prompts=[ok, [1] * (limits.max_seq_len - 1)], max_new_tokens=2),
            "prompts[1]",
        ),
        "huge_prompt": (body(prompts=[[1] * 100_000]), "prompts[0]"),
        "negative_max_new_tokens": (body(max_new_tokens=-1), "max_new_tokens"),
        "zero_max_new_tokens": (body(max_new_tokens=0), "max_new_tokens"),
        "huge_max_new_tokens": (body(max_new_tokens=10**12), "max_new_tokens"),
        "float_max_new_tokens": (body(max_new_tokens=2.5), "max_new_tokens"),
        "negative_temperature": (body(temperature=-0.5), "temperature"),
        "nan_temperature": (
            body().replace('"max_new_tokens"', '"temperature": NaN, "max_new_tokens"'),
            "temperature",
        ),
        "zero_top_k": (body(top_k=0), "top_k"),
        "negative_seed": (body(seed=-3), "seed"),
        "unknown_field": (body(max_tokens=5), "max_tokens"),
        "missing_prompts": (json.dumps({"max_new_tokens": 2}), "prompts"),
        "not_an_object": (json.dumps([[1, 2]]), "body"),
        "infinite_temperature": (
            body().replace('"max_new_tokens"', '"temperature": 1e999, "max_new_tokens"'),
            "temperature",
        ),
        "malformed_json": ('{"prompts": [[1, 2', "body"),
        "deep_nesting": ("[" * 100_000 + "]" * 100_000, "body"),
        "not_utf8": (b'{"prompts": [[1]], "\xff\xfe": 1}', "body"),
        "empty_body": ("", "body"),
    }
