"""The FastAPI app: POST /infer, GET /health, GET /metrics over one loaded model.

/openapi.json (and /docs, which renders it) is the contract: the request model with this
server's bounds, every answer's model, and each error status with what it means. Every error
answer is JSON {"error": "<field>: <what is wrong>", "field": "<field>"} (responses.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ryot.config import RYOT_MODEL_KEYS
from ryot.serve.accounting import Accounting
from ryot.serve.batcher import Batcher
from ryot.serve.body import BodyTooLarge, read_body
from ryot.serve.generate import BatchResult, Row, generate
from ryot.serve.metrics import ServerMetrics
from ryot.serve.responses import HealthResponse, InferResponse, error_responses
from ryot.serve.schemas import Limits, RequestProblem, check_context, describe, request_model
from ryot.serve.served_run import RunVerdict, ServedModel

log = logging.getLogger("ryot.serve")


def _problem(status: int, field: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": f"{field}: {message}", "field": field}, status_code=status, headers=headers
    )


def publish_request_body(app: FastAPI, path: str, model: type[BaseModel]) -> None:
    """Put `model`'s JSON schema into /openapi.json as the request body of POST `path`.

    After FastAPI has built the document, not through `openapi_extra`: FastAPI passes the
    document through its own models, which hold every bound as a float, and the largest seed
    2**63 - 1 would be published as 2**63, a value the server refuses.
    """
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = build()
            document["paths"][path]["post"]["requestBody"] = {
                "description": "JSON, whatever the Content-Type header says (curl -d sends "
                "application/x-www-form-urlencoded), at most max_body_bytes (see /health).",
                "required": True,
                "content": {"application/json": {"schema": model.model_json_schema()}},
            }
        return app.openapi_schema

    app.openapi = openapi


def model_info(served: ServedModel) -> dict:
    """/health's model: its name, its decoding and the snapshot's model section, where the keys
    only Ryot's model reads are null for a model of one's own."""
    section = dataclasses.asdict(served.config.model)
    if served.config.model.is_factory:
        section |= dict.fromkeys(RYOT_MODEL_KEYS)
    return {"name": served.name, "kv_cache": served.kv_cache, **section}


def create_app(
    served: ServedModel,
    verdict: RunVerdict,
    *,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    max_body_bytes: int | None = None,
    allow_no_go: bool = False,
) -> FastAPI:
    """An app serving `served`; its batcher runs while the app's lifespan does.

    max_body_bytes None takes the served run's `serving.max_body_bytes`.
    """
    if max_body_bytes is None:
        max_body_bytes = served.config.serving.max_body_bytes
    metrics = ServerMetrics()
    limits = Limits(
        served.config.model.vocab_size, served.config.model.max_seq_len, max_prompts=max_batch
    )
    InferRequest = request_model(limits)

    def on_batch(rows: int, result: BatchResult) -> None:
        metrics.batch_size.observe(rows)

    context = served.config.model.max_seq_len
    batcher = Batcher(
        lambda rows: generate(served.model, rows, context),
        max_batch=max_batch,
        max_wait_s=max_wait_ms / 1000,
        on_queue_depth=metrics.queue_depth.set,
        on_batch=on_batch,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    decoding = "KV-cached" if served.kv_cache else "without a KV cache (a full forward per token)"
    app = FastAPI(
        title="ryot serve",
        summary=f"Continues token-id prompts with the {served.arm} checkpoint of a Stage 3a run: "
        f"{served.name}, decoded {decoding}.",
        version="1",
        lifespan=lifespan,
    )
    app.state.started = time.monotonic()
    app.state.draining = False
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.add_middleware(Accounting, metrics=metrics)

    def start_draining() -> None:
        """SIGTERM: answer 503 to new requests, finish the queued ones without waiting."""
        app.state.draining = True
        batcher.draining = True

    app.state.start_draining = start_draining

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 404 and 405 from routing, in the one error shape; 405 keeps its Allow header.
        field = {404: "path", 405: "method"}.get(exc.status_code, "request")
        return _problem(exc.status_code, field, str(exc.detail), headers=exc.headers)

    # The body is parsed here rather than by FastAPI: it is JSON whatever the Content-Type says
    # (curl -d sends form encoding), it is read under a size limit, and malformed JSON gets its
    # own one-line message. The model it is validated with is published as the request body.
    publish_request_body(app, "/infer", InferRequest)

    @app.post(
        "/infer",
        response_model=InferResponse,
        responses=error_responses(413, 422, 500, 503),
        summary="Continue each prompt by max_new_tokens tokens (greedy or seeded sampling)",
    )
    async def infer(request: Request):
        if app.state.draining:
            return _problem(503, "server", "shutting down, not taking new requests")
        try:
            raw = await read_body(request, max_body_bytes)
        except BodyTooLarge as exc:
            return _problem(413, "body", str(exc))
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return _problem(422, "body", f"malformed JSON ({exc})")
        try:
            req = InferRequest.model_validate(data)
            check_context(req, limits)
        except ValidationError as exc:
            return _problem(422, *describe(exc.errors()[0]))
        except RequestProblem as exc:
            return _problem(422, exc.field, exc.message)
        received = time.perf_counter()
        rows = [
            # Each prompt of a seeded request gets its own stream, the same on every call.
            Row(tuple(p), req.max_new_tokens, req.temperature, req.top_k,
                None if req.seed is None else req.seed + i)
            for i, p in enumerate(req.prompts)
        ]  # fmt: skip
        try:
            done = await batcher.submit(rows)
        except Exception as exc:  # a defect: this request answers 500, the server keeps serving
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"  # torch's may span lines
            log.error("POST /infer: decoding failed (%s)", why)
            return _problem(500, "server", f"decoding failed ({why})")
        mine = done.batch.rows[done.first : done.first + len(rows)]
        new_tokens = sum(len(r.tokens) for r in mine)
        metrics.tokens.inc(new_tokens)
        total_s = time.perf_counter() - received
        return {
            "completions": [r.tokens for r in mine],
            "logprobs": [r.logprobs for r in mine],
            "timing": {
                "queue_ms": done.queue_s * 1000,
                "prefill_ms": done.batch.prefill_s * 1000,
                "decode_ms": done.batch.decode_s * 1000,
                "total_ms": total_s * 1000,
                "batch_rows": done.batch_rows,
                "decode_steps": done.batch.steps,
                "new_tokens": new_tokens,
            },
        }

    @app.get("/health", response_model=HealthResponse, summary="The served model, run and limits")
    async def health():
        model = served.config.model
        return {
            "status": "draining" if app.state.draining else "ok",
            "model": model_info(served),
            "parameters": served.num_parameters,
            "checkpoint": {
                "path": str(served.checkpoint),
                "sha256": served.sha256,
                "arm": served.arm,
            },
            "run": {
                "verdict": verdict.status,
                "speedup_percent": verdict.speedup_percent,
                "matched_loss_speedup_percent": verdict.matched_loss_speedup_percent,
                "serving_without_go": verdict.status != "GO",
                "allow_no_go": allow_no_go,
            },
            "device": str(served.device),
            "uptime_s": time.monotonic() - app.state.started,
            "limits": {
                "max_batch": max_batch,
                "max_wait_ms": max_wait_ms,
                "max_seq_len": model.max_seq_len,
                "vocab_size": model.vocab_size,
                "max_body_bytes": max_body_bytes,
            },
        }

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Prometheus metrics, text exposition format",
        responses={200: {"description": "ryot_* series; the README's Reading /metrics."}},
    )
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app
