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


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    # The HTTP server has already refused a malformed Content-Length: digits are all that is
    # left. One with more digits than the limit is over it (and int() refuses 4300 digits).
    declared = request.headers.get("content-length", "").lstrip("0") or "0"
    if declared.isdigit() and (len(declared) > len(str(limit)) or int(declared) > limit):
        shown = declared if len(declared) <= 20 else f"a {len(declared)}-digit number of"
        raise BodyTooLarge(f"{shown} bytes declared by Content-Length, the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"{size} bytes received so far, the limit is {limit}")
        chunks.append(chunk)
    return b"".join(chunks)
