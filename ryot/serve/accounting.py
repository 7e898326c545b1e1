"""ASGI middleware that counts every answer by endpoint and status, as the client got it.

It reads the status off the response actually sent (a plain ASGI middleware, so nothing is
buffered or re-wrapped), and a client that goes away before its body has arrived is what it is:
one log line and a count in ryot_client_disconnects_total, not a traceback and a 500 nobody was
sent.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ryot.serve.metrics import ServerMetrics

log = logging.getLogger("ryot.serve")


class Accounting:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        started = time.perf_counter()
        status: int | None = None
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def noted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, noted_send)
        except ClientDisconnect:
            if status is not None:
                raise
            # Raised by the body read: nobody is left to answer, so nothing is sent.
            self.metrics.observe_disconnect(path)
            host, port = scope.get("client") or ("?", 0)
            log.warning(
                "%s %s: client %s:%s disconnected after %d bytes of its body; nothing answered",
                scope["method"], path, host, port, received,
            )  # fmt: skip
            return
        except BaseException:
            # The error middleware outside answers 500 (and logs the defect's traceback).
            self.metrics.observe_request(path, status or 500, time.perf_counter() - started)
            raise
        self.metrics.observe_request(path, status or 500, time.perf_counter() - started)
