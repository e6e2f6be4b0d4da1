"""ASGI middleware of the API: API keys, the body-size cap, request metrics.

Plain ASGI (no per-request task or body buffering of Starlette's ``BaseHTTPMiddleware``), so
they cost microseconds. The size cap answers 413 from ``Content-Length`` before the body is read,
and for a body without one counts the bytes as they arrive.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["OPEN_PATHS", "ApiKeyMiddleware", "BodyLimitMiddleware", "MetricsMiddleware"]

#: Paths that answer without an API key.
OPEN_PATHS = frozenset({"/health", "/metrics"})


async def _json(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """401 unless ``X-API-Key`` is one of the keys (constant-time compare against each)."""

    def __init__(self, app: ASGIApp, keys: Iterable[str]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]

    def _known(self, given: bytes) -> bool:
        found = False
        for key in self.keys:  # no early exit: the time does not say which key nearly matched
            found |= hmac.compare_digest(given, key)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                given = value
                break
        if not given or not self._known(given):
            await _json(
                send,
                401,
                "a valid API key is needed in the X-API-Key header",
                [(b"www-authenticate", b"APIKey")],
            )
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes, checked before it is parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _json(send, 400, "Content-Length is not a number")
                    return
                if declared > self.limit:
                    await _json(send, 413, f"the request body is over {self.limit:,} bytes")
                    return
                break
        # No (or a false) Content-Length: count the body as it arrives. Over the limit, answer
        # 413 at once, tell the app the client went away, and drop whatever it answers then.
        seen = 0
        started = refused = False

        async def counting() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        await _json(send, 413, f"the request body is over {self.limit:,} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting, guarded)


class MetricsMiddleware:
    """Count requests and time them per route template (``/customers/{customer_id}``)."""

    def __init__(self, app: ASGIApp, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - start
            )
