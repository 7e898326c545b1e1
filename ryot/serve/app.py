"""The FastAPI app: POST /infer, GET /health, GET /metrics over one loaded model.

Every error answer is JSON {"error": "<field>: <what is wrong>", "field": "<field>"}, so a client
(or a person with curl) sees in one line which part of the request to fix.
"""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from ryot.serve.batcher import Batcher
from ryot.serve.generate import BatchResult, Row, generate
from ryot.serve.metrics import ServerMetrics
from ryot.serve.run_dir import RunVerdict, ServedModel
from ryot.serve.schemas import InferRequest, Limits, RequestProblem, check_request, field_name


def _problem(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": f"{field}: {message}", "field": field}, status_code=status)


def create_app(
    served: ServedModel,
    verdict: RunVerdict,
    *,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    allow_no_go: bool = False,
) -> FastAPI:
    """An app serving `served`; its batcher runs while the app's lifespan does."""
    metrics = ServerMetrics()
    limits = Limits(
        served.config.model.vocab_size, served.config.model.max_seq_len, max_prompts=max_batch
    )

    def on_batch(rows: int, result: BatchResult) -> None:
        metrics.batch_size.observe(rows)

    batcher = Batcher(
        lambda rows: generate(served.model, rows),
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

    app = FastAPI(title="ryot serve", lifespan=lifespan)
    app.state.started = time.monotonic()
    app.state.draining = False
    app.state.batcher = batcher
    app.state.metrics = metrics

    def start_draining() -> None:
        """SIGTERM: answer 503 to new requests, finish the queued ones without waiting."""
        app.state.draining = True
        batcher.draining = True

    app.state.start_draining = start_draining

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            metrics.observe_request(request.url.path, status, time.perf_counter() - started)

    def invalid(errors: list) -> JSONResponse:
        error = errors[0]
        return _problem(422, field_name(error.get("loc", ())), str(error.get("msg", "invalid")))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(list(exc.errors()))

    @app.post("/infer")
    async def infer(request: Request):
        if app.state.draining:
            return _problem(503, "server", "shutting down, not taking new requests")
        # Parsed here rather than by FastAPI: the body is JSON whatever the Content-Type says
        # (curl -d sends form encoding), and malformed JSON gets its own one-line message.
        try:
            data = json.loads(await request.body())
        except (ValueError, RecursionError) as exc:
            return _problem(422, "body", f"malformed JSON ({exc})")
        try:
            req = InferRequest.model_validate(data)
        except ValidationError as exc:
            return invalid(exc.errors())
        try:
            check_request(req, limits)
        except RequestProblem as exc:
            return _problem(422, exc.field, exc.message)
        received = time.perf_counter()
        rows = [
            Row(tuple(p), req.max_new_tokens, float(req.temperature), req.top_k, req.seed)
            if req.seed is None
            # Each prompt of a seeded request gets its own stream, the same on every call.
            else Row(tuple(p), req.max_new_tokens, float(req.temperature), req.top_k, req.seed + i)
            for i, p in enumerate(req.prompts)
        ]
        try:
            done = await batcher.submit(rows)
        except Exception as exc:  # a failed decode answers 500; the server keeps serving
            return _problem(500, "server", f"decoding failed ({type(exc).__name__}: {exc})")
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

    @app.get("/health")
    async def health():
        model = served.config.model
        return {
            "status": "draining" if app.state.draining else "ok",
            "model": {"name": type(served.model).__name__, **served.model.get_config()},
            "parameters": served.num_parameters,
            "checkpoint": {
                "path": str(served.checkpoint),
                "sha256": served.sha256,
                "arm": served.arm,
            },
            "run": {
                "verdict": verdict.status,
                "speedup_percent": verdict.speedup_percent,
                "time_to_target_speedup_percent": verdict.time_to_target_speedup_percent,
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
            },
        }

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app
