"""API keys (``x-api-key``, as S2), per-key rate limits and the request-body cap, as one ASGI middleware.

It runs before routing, so a request without a valid key gets 403 whatever it asks for and learns
nothing about the corpus (not even whether a paper id exists).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

FORBIDDEN = {"message": "Forbidden"}
TOO_MANY = {
    "message": "Too Many Requests. Please wait and try again or apply for a key for higher rate limits.",
    "code": "429",
}
PUBLIC_PATHS = ("/", "/openapi.json", "/favicon.ico")  # the page shell and the schema hold no corpus data
PUBLIC_PREFIXES = ("/static/",)
MAX_TRACKED_CLIENTS = 10_000


@dataclass(frozen=True)
class GuardConfig:
    api_keys: dict[str, float | None] = field(default_factory=dict)  # key -> requests/s (None: the default)
    rate_limit: float | None = None  # requests/s per key (or per client address without keys); None: no limit
    burst: float | None = None  # bucket size; default max(1, rate)
    max_body_bytes: int = 1_000_000


class TokenBuckets:
    """One token bucket per client: ``rate`` tokens/s, at most ``burst``; thread-safe."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str, rate: float, burst: float, now: float | None = None) -> float:
        """0.0 if the request may go ahead, else the seconds until a token is free."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._state.get(client, (burst, now))
            tokens = min(burst, tokens + (now - stamp) * rate)
            if tokens >= 1.0:
                self._state[client] = (tokens - 1.0, now)
                return 0.0
            self._state[client] = (tokens, now)
            if len(self._state) > MAX_TRACKED_CLIENTS:  # forget the fullest buckets' clients first
                for key in [k for k, (t, _) in self._state.items() if t >= burst - 1e-9][: MAX_TRACKED_CLIENTS // 2]:
                    del self._state[key]
            return (1.0 - tokens) / rate


async def _send_json(
    send: Callable[..., Awaitable[None]], status: int, body: dict, headers: dict | None = None
) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """The API-key and rate-limit decision, with its token buckets: one per app, shared by the middleware and
    the hand-written fast path (``fastpath.py``), so that both count against the same limits."""

    def __init__(self, config: GuardConfig):
        self.config = config
        self.buckets = TokenBuckets()

    def refusal(self, path: str, key: str | None, address: Any) -> tuple[int, dict, dict | None] | None:
        """(status, JSON body, headers) of the 403 / 429 answer for this request, or None to let it through.

        ``key``: its ``x-api-key`` header (the last one), ``address``: ASGI's ``scope["client"]``."""
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        config = self.config
        if config.api_keys:
            if key is None or key not in config.api_keys:
                return 403, FORBIDDEN, None
            client = f"key:{key}"
            rate = config.api_keys[key] or config.rate_limit
        else:
            client = f"addr:{(address or ('unknown', 0))[0]}"
            rate = config.rate_limit
        if rate:
            wait = self.buckets.take(client, rate, config.burst or max(1.0, rate))
            if wait > 0:
                return 429, TOO_MANY, {"retry-after": str(max(1, math.ceil(wait)))}
        return None


async def send_refusal(send: Callable[..., Awaitable[None]], refusal: tuple[int, dict, dict | None]) -> None:
    await _send_json(send, *refusal)


class GuardMiddleware:
    def __init__(self, app: Any, guard: Guard):
        self.app = app
        self.guard = guard

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        config = self.guard.config
        refusal = self.guard.refusal(scope.get("path", ""), headers.get("x-api-key"), scope.get("client"))
        if refusal is not None:
            await send_refusal(send, refusal)
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            await _send_json(send, 413, {"error": f"request body larger than {config.max_body_bytes} bytes"})
            return
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            body = await _read_capped(receive, config.max_body_bytes)  # chunked: count as it arrives
            if body is None:
                await _send_json(send, 413, {"error": f"request body larger than {config.max_body_bytes} bytes"})
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


async def _read_capped(receive: Callable, limit: int) -> bytes | None:
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Callable:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
