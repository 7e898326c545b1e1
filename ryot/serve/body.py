"""Reading a request body with a size limit, so a huge body costs neither memory nor the loop.

A declared Content-Length over the limit is refused before one byte of the body is read; a body
without one (chunked) is counted as it streams in and refused at the first chunk past the limit.
Either way the server never holds more than the limit, and what the client still sends is
discarded by the HTTP server as it arrives.
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(ValueError):
    """The body is over the limit: answered 413."""

    def __init__(self, size: int, limit: int, declared: bool):
        how = "declared by Content-Length" if declared else "received so far"
        super().__init__(f"{size} bytes {how}, the limit is {limit}")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    # The HTTP server has already refused a malformed Content-Length; digits are all that is left.
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(int(declared), limit, declared=True)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size, limit, declared=False)
        chunks.append(chunk)
    return b"".join(chunks)
