"""Bounded HTTP load on a running server with an async client: a fixed list of requests, a
fixed number in flight, one time limit for the whole phase."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx

from ryot.serve.loadstats import LoadSummary, summarize


@dataclass
class Answer:
    status: int | None  # None: the request never got an HTTP answer
    seconds: float
    body: dict | None = None
    error: str = ""


@dataclass
class Phase:
    answers: list[Answer]
    wall_s: float
    concurrency: int
    summary: LoadSummary = field(init=False)

    def __post_init__(self) -> None:
        ok = [a for a in self.answers if a.status == 200 and a.body is not None]
        self.summary = summarize(
            [a.seconds for a in ok],
            errors=len(self.answers) - len(ok),
            concurrency=self.concurrency,
            wall_s=self.wall_s,
            new_tokens=sum(len(c) for a in ok for c in a.body["completions"]),
            batch_rows=[a.body["timing"]["batch_rows"] for a in ok],
        )

    def errors(self) -> list[str]:
        return [f"{a.status}: {a.error}" for a in self.answers if a.status != 200]


def prompts(count: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(length)] for _ in range(count)]


async def _post(client: httpx.AsyncClient, body: dict, gate: asyncio.Semaphore) -> Answer:
    async with gate:
        started = time.perf_counter()
        try:
            response = await client.post("/infer", json=body)
        except httpx.HTTPError as exc:
            return Answer(None, time.perf_counter() - started, error=type(exc).__name__)
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            return Answer(response.status_code, seconds, error=response.text[:200])
        return Answer(200, seconds, response.json())


async def _phase(url: str, bodies: list[dict], concurrency: int, limit_s: float) -> Phase:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=limit_s, limits=limits) as client:
        started = time.perf_counter()
        answers = await asyncio.wait_for(
            asyncio.gather(*(_post(client, b, gate) for b in bodies)), timeout=limit_s
        )
        wall = time.perf_counter() - started
    return Phase(list(answers), wall, concurrency)


def run_phase(url: str, bodies: list[dict], concurrency: int, limit_s: float) -> Phase:
    """Send `bodies` to POST /infer, at most `concurrency` at a time, within limit_s."""
    return asyncio.run(_phase(url, bodies, concurrency, limit_s))
