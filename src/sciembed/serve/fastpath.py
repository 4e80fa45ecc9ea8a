"""A hand-written ASGI path for the hot GET routes: paper search, paper lookup, recommendations for a paper.

FastAPI's per-request machinery (middleware stack, routing, dependency solving, validation, response
objects) cost about as much CPU per cached search as the search itself (docs/PERFORMANCE.md, "Serving").
:class:`FastPathAPI` is the FastAPI app with one addition: before anything else it asks :class:`FastPath`
whether it can answer the request, and if so answers it directly: the same guard (API keys, rate limits,
one set of token buckets), the same parameter reading, the same work (the app's shared ``*_payload``
coroutines) and the same bytes and headers as the FastAPI route. Anything it is not sure about goes to
FastAPI unchanged: another method, a request with a body, a missing, blank or repeated-oddly parameter,
an integer FastAPI would have to parse or range-check, a root path. FastAPI still defines (and the
OpenAPI schema still documents) every route; tests/serve/test_fastpath.py compares the two paths.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.responses import JSONResponse, PlainTextResponse

from .guard import Guard, send_refusal

SEARCH_PATH = "/graph/v1/paper/search"
PAPER_PREFIX = "/graph/v1/paper/"
FOR_PAPER_PREFIX = "/recommendations/v1/papers/forpaper/"
# integers in the form and range that FastAPI's Query(ge=..., le=...) accepts as exactly int(text);
# anything else (signs, spaces, underscores, out of range) is left to FastAPI and its error message
_NATURAL = re.compile(r"[0-9]{1,5}")
_INTEGER = re.compile(r"-?[0-9]{1,5}")
INT_BOUND = 10_000  # the routes' Query(ge=-10_000 / 0, le=10_000)
JSON_TYPE = (b"content-type", b"application/json")

Send = Callable[[dict], Awaitable[None]]
Answer = Callable[[], Awaitable[bytes]]


def _params(scope: dict) -> dict[str, str] | None:
    """The query string as FastAPI reads it (Starlette's parse, the last of repeated names wins), or None when a
    value is blank (FastAPI's handling of those is its own business)."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if any(not value for value in params.values()):
        return None
    return params


def _int(params: dict[str, str], name: str, default: int, natural: bool) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    if not (_NATURAL if natural else _INTEGER).fullmatch(text):
        return None
    value = int(text)
    return value if -INT_BOUND <= value <= INT_BOUND else None


class FastPath:
    """Matches the hot routes; ``payloads`` are the app's ``search`` / ``paper`` / ``for_paper`` coroutines,
    ``api_error`` the exception class (``status``, ``message``) they raise for a 4xx."""

    def __init__(self, guard: Guard, payloads: dict[str, Callable[..., Awaitable[bytes]]], api_error: type):
        self.guard = guard
        self.search = payloads["search"]
        self.paper = payloads["paper"]
        self.for_paper = payloads["for_paper"]
        self.api_error = api_error

    def match(self, scope: dict) -> Answer | None:
        """A coroutine function making the response body, or None: FastAPI answers this request."""
        if scope["method"] != "GET" or scope.get("root_path"):
            return None
        path = scope["path"]
        if path == SEARCH_PATH:
            return self._search(scope)
        if path.startswith(PAPER_PREFIX) and len(path) > len(PAPER_PREFIX):
            return self._paper(scope, path[len(PAPER_PREFIX) :])
        if path.startswith(FOR_PAPER_PREFIX) and len(path) > len(FOR_PAPER_PREFIX):
            return self._for_paper(scope, path[len(FOR_PAPER_PREFIX) :])
        return None

    def _search(self, scope: dict) -> Answer | None:
        params = _params(scope)
        if params is None or "query" not in params:
            return None
        offset = _int(params, "offset", 0, natural=True)
        limit = _int(params, "limit", 10, natural=False)
        if offset is None or limit is None:
            return None
        query, fields, year = params["query"], params.get("fields"), params.get("year")
        return lambda: self.search(query, offset, limit, fields, year)

    def _paper(self, scope: dict, paper_id: str) -> Answer | None:
        params = _params(scope)
        if params is None:
            return None
        fields = params.get("fields")
        return lambda: self.paper(paper_id, fields)

    def _for_paper(self, scope: dict, paper_id: str) -> Answer | None:
        params = _params(scope)
        if params is None:
            return None
        limit = _int(params, "limit", 100, natural=False)
        if limit is None:
            return None
        fields = params.get("fields")
        return lambda: self.for_paper(paper_id, limit, fields)

    async def answer(self, scope: dict, receive: Callable, send: Send, answer: Answer, key: str | None) -> None:
        """Answer with ``answer``'s body, or the guard's refusal; ``key``: the request's x-api-key."""
        refusal = self.guard.refusal(scope["path"], key, scope.get("client"))
        if refusal is not None:
            await send_refusal(send, refusal)
            return
        try:
            payload = await answer()
        except self.api_error as exc:  # as the app's ApiError handler answers
            await JSONResponse({"error": exc.message}, status_code=exc.status)(scope, receive, send)
            return
        except Exception:  # as Starlette's ServerErrorMiddleware answers, then lets the server log it
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        headers = [(b"content-length", str(len(payload)).encode("latin-1")), JSON_TYPE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _api_key(scope: dict) -> tuple[str | None, bool]:
    """(the last x-api-key header, as the guard middleware reads them; whether the request has a body)."""
    key, body = None, False
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"x-api-key":
            key = value.decode("latin-1")
        elif name == b"content-length" or name == b"transfer-encoding":
            body = True  # the guard middleware's body limits apply: FastAPI's path
    return key, body


class FastPathAPI(FastAPI):
    """FastAPI with :class:`FastPath` in front (``fast_path`` None: plain FastAPI)."""

    fast_path: FastPath | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http":
            answer: Any = fast.match(scope)
            if answer is not None:
                key, body = _api_key(scope)
                if not body:
                    await fast.answer(scope, receive, send, answer, key)
                    return
        await super().__call__(scope, receive, send)
