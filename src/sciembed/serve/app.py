"""The HTTP service: S2-compatible Graph / Recommendations paths, our /embed, health, the search page.

Errors use S2's shapes: 400 ``{"error": ...}`` for bad parameters (never a 500 for bad input), 404
``{"error": "Paper with id ... not found"}``, 403 ``{"message": "Forbidden"}`` and 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..model import canonical_format
from .batching import BatchingEncoder
from .fastpath import FastPath, FastPathAPI
from .fields import FieldError, FieldSelection, paper_json, parse_fields
from .guard import Guard, GuardConfig, GuardMiddleware
from .index import PaperIndex
from .vectors import normalise, set_threads

YEAR_FILTER = re.compile(r"^\s*(\d{4})?\s*(-)?\s*(\d{4})?\s*$")


@dataclass(frozen=True)
class ServeConfig:
    max_batch_ids: int = 500  # S2's /paper/batch limit
    max_search_limit: int = 100  # S2: limit <= 100
    max_search_window: int = 1000  # S2: only the first 1,000 relevance-ranked results
    max_recommendations: int = 500  # S2: limit <= 500
    max_seed_papers: int = 500
    max_embed_items: int = 64
    max_text_chars: int = 10_000  # per title / abstract / query
    max_response_bytes: int = 10_000_000  # S2: at most 10 MB per response
    max_map_points: int = 20_000
    negative_weight: float = 0.5  # recommendations: query = mean(positives) - w * mean(negatives)
    refresh_seconds: float = 2.0  # pick up generations that `sciembed index add` commits meanwhile
    search_threads: int = 1  # FAISS threads: requests run concurrently, each search is small
    batch_window_ms: float = 2.0  # how long the query encoder waits for more queries to batch with
    fast_path: bool = True  # answer the hot GET routes without FastAPI's routing and validation (fastpath.py)
    guard: GuardConfig = field(default_factory=GuardConfig)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class BatchRequest(BaseModel):
    ids: list[str] = Field(
        ..., description="Paper ids (paperId, CorpusId:, DOI:, ArXiv:, ACL:, PMID: ...), at most 500"
    )


class RecommendationRequest(BaseModel):
    positivePaperIds: list[str] = Field(..., description="Papers like the ones wanted")
    negativePaperIds: list[str] = Field(default_factory=list, description="Papers unlike the ones wanted")


class PaperText(BaseModel):
    paper_id: str | None = None
    title: str | None = None
    abstract: str | None = None


class EmbedRequest(BaseModel):
    format: str = Field("proximity", description="proximity, classification, regression, adhoc_query or [PRX] ...")
    papers: list[PaperText] | None = None
    queries: list[str] | None = None


def _payload(body: Any, config: ServeConfig) -> bytes:
    payload = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    if len(payload) > config.max_response_bytes:
        mb = config.max_response_bytes / 1e6
        raise ApiError(400, f"Response would exceed maximum size of {mb:g} MB; ask for fewer papers or fields")
    return payload


def _json(body: Any, config: ServeConfig, status: int = 200) -> Response:
    return Response(_payload(body, config), status_code=status, media_type="application/json")


def _not_found(paper_id: str) -> ApiError:
    return ApiError(404, f"Paper with id {paper_id} not found")


def _year_filter(value: str | None) -> tuple[int, int] | None:
    if value is None or not value.strip():
        return None
    match = YEAR_FILTER.match(value)
    if not match or not (match.group(1) or match.group(3)) or (not match.group(2) and match.group(3)):
        raise ApiError(400, f"Invalid year filter {value!r}: use 2019, 2016-2020, 2010- or -2015")
    low = int(match.group(1)) if match.group(1) else 0
    high = int(match.group(3)) if match.group(3) else (9999 if match.group(2) else low)
    return low, high


def page_html() -> str:
    return resources.files("sciembed.serve").joinpath("page/index.html").read_text(encoding="utf-8")


def create_app(index: PaperIndex, encoder: Any, config: ServeConfig | None = None, device: str = "cpu") -> FastAPI:
    """The service over an open index; ``encoder`` embeds queries and /embed inputs (the index's model)."""
    config = config or ServeConfig()
    if encoder.fingerprint != index.model.fingerprint:
        raise ValueError(
            f"model {encoder.name} (fingerprint {encoder.fingerprint[:12]}...) is not the model the index in "
            f"{index.folder} was built with ({index.model.name}, {index.model.fingerprint[:12]}...)"
        )
    batcher = BatchingEncoder(encoder, device=device, window_s=config.batch_window_ms / 1000)
    paper_format = index.map_format
    query_format = "adhoc_query"
    model_name = index.model.name

    async def lifespan(app: FastAPI):
        async def watch() -> None:
            while True:
                await asyncio.sleep(config.refresh_seconds)
                try:
                    await run_in_threadpool(index.refresh)
                except Exception:  # a writer mid-commit; the next round picks it up
                    pass

        task = asyncio.create_task(watch())
        yield
        task.cancel()
        batcher.close()

    app = FastPathAPI(
        title="sciembed",
        version="1",
        description=(
            "Semantic-Scholar-compatible paper lookup, search and recommendations over a sciembed index, "
            f"embedded with {model_name}. Send `x-api-key` when the service has keys."
        ),
        docs_url=None,  # Swagger UI loads assets from a CDN; the schema stays at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.index = index  # what `sciembed serve` reports and tests inspect
    guard = Guard(config.guard)
    app.add_middleware(GuardMiddleware, guard=guard)

    # ---- errors in S2's shapes --------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors()[:5]:
            loc = list(error.get("loc", ()))
            where = ".".join(str(p) for p in (loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc))
            parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    # ---- helpers ----------------------------------------------------------------------------------
    def selection(fields: str | None, allow_score: bool = False) -> FieldSelection:
        try:
            return parse_fields(fields, index.formats, paper_format, allow_score)
        except FieldError as exc:
            raise ApiError(400, str(exc)) from None

    def render(records: list[dict | None], sel: FieldSelection, scores: list[float] | None = None) -> list:
        vectors: dict[int, np.ndarray] = {}
        if sel.embedding_format is not None:
            vectors = index.vectors(sel.embedding_format, [r["row_id"] for r in records if r is not None])
        out = []
        for i, record in enumerate(records):
            if record is None:
                out.append(None)
                continue
            score = scores[i] if scores is not None else None
            out.append(paper_json(record, sel, model_name, vectors.get(record["row_id"]), score))
        return out

    def check_ids(ids: list[str], what: str, limit: int) -> None:
        if len(ids) > limit:
            raise ApiError(400, f"{what}: at most {limit} ids per request, got {len(ids)}")
        for paper_id in ids:
            if not isinstance(paper_id, str) or not paper_id.strip() or len(paper_id) > 1000:
                raise ApiError(400, f"{what}: every id must be a non-empty string of at most 1000 characters")

    async def embed_one(item: str | dict, fmt: str) -> np.ndarray:
        hit = batcher.cached(item, fmt)
        return hit if hit is not None else await asyncio.wrap_future(batcher.submit(item, fmt))

    def search_one(vector: np.ndarray, k: int):
        # OpenMP's thread count is per calling thread: set it in the pool thread that searches
        set_threads(config.search_threads)
        return index.search(paper_format, vector[None, :], k)[0]

    def neighbours(vector: np.ndarray, k: int, exclude: set[int]) -> tuple[list[dict], list[float]]:
        hits = search_one(vector, k + len(exclude))
        hits = [h for h in hits if h.row_id not in exclude][:k]
        return [h.record for h in hits], [h.score for h in hits]

    def check_limit(limit: int, maximum: int) -> None:
        if limit < 1 or limit > maximum:
            raise ApiError(400, f"limit must be between 1 and {maximum}, got {limit}")

    # ---- Graph API --------------------------------------------------------------------------------
    # The hot routes' work, shared by the FastAPI routes and the fast path (fastpath.py), which reads the same
    # parameters from the query string itself: both answer with these bytes or raise the same ApiError.
    async def search_payload(query: str, offset: int, limit: int, fields: str | None, year: str | None) -> bytes:
        check_limit(limit, config.max_search_limit)
        if offset + limit > config.max_search_window:
            raise ApiError(400, f"offset + limit must be <= {config.max_search_window}")
        text = query.strip()
        if not text:
            raise ApiError(400, "query must not be empty")
        if len(text) > config.max_text_chars:
            raise ApiError(400, f"query must be at most {config.max_text_chars} characters")
        sel = selection(fields, allow_score=True)
        years = _year_filter(year)
        vector = await embed_one(text, query_format)

        def run() -> bytes:
            window = config.max_search_window if years else offset + limit
            hits = search_one(vector, min(window, max(1, len(index))))
            ranked = [
                (h.record, h.score)
                for h in hits
                if years is None or (h.record["year"] is not None and years[0] <= h.record["year"] <= years[1])
            ]
            total = len(ranked) if years else len(index)
            page = ranked[offset : offset + limit]
            body: dict[str, Any] = {"total": total, "offset": offset}
            reachable = min(total, config.max_search_window, len(ranked) if years else total)
            if offset + limit < reachable:
                body["next"] = offset + limit
            body["data"] = render([r for r, _ in page], sel, [s for _, s in page])
            return _payload(body, config)

        return await run_in_threadpool(run)

    async def paper_payload(paper_id: str, fields: str | None) -> bytes:
        check_ids([paper_id], "paper_id", 1)
        sel = selection(fields)

        def run() -> bytes:
            record = index.get([paper_id])[0]
            if record is None:
                raise _not_found(paper_id)
            return _payload(render([record], sel)[0], config)

        return await run_in_threadpool(run)

    async def for_paper_payload(paper_id: str, limit: int, fields: str | None) -> bytes:
        check_limit(limit, config.max_recommendations)
        check_ids([paper_id], "paper_id", 1)
        sel = selection(fields, allow_score=True)

        def run() -> bytes:
            row_id = index.resolve([paper_id])[0]
            if row_id is None:
                raise _not_found(paper_id)
            vector = index.vectors(paper_format, [row_id]).get(row_id)
            if vector is None:
                raise _not_found(paper_id)
            records, scores = neighbours(vector, limit, {row_id})
            return _payload({"recommendedPapers": render(records, sel, scores)}, config)

        return await run_in_threadpool(run)

    # ---- Graph API --------------------------------------------------------------------------------
    @app.get("/graph/v1/paper/search", tags=["Graph API"], summary="Search papers by relevance (dense retrieval)")
    async def search_papers(
        query: str = Query(..., description="Plain-text search query"),
        offset: int = Query(0, ge=0, le=10_000),
        limit: int = Query(10, ge=-10_000, le=10_000, description="At most 100"),
        fields: str | None = Query(
            None, description="Comma-separated fields (paperId is always returned); `score` too"
        ),
        year: str | None = Query(None, description="2019, 2016-2020, 2010- or -2015"),
    ) -> Response:
        return Response(await search_payload(query, offset, limit, fields, year), media_type="application/json")

    @app.post("/graph/v1/paper/batch", tags=["Graph API"], summary="Details for up to 500 papers, in request order")
    async def paper_batch(body: BatchRequest, fields: str | None = Query(None)) -> Response:
        check_ids(body.ids, "ids", config.max_batch_ids)
        sel = selection(fields)
        return _json(await run_in_threadpool(lambda: render(index.get(body.ids), sel)), config)

    @app.get("/graph/v1/paper/{paper_id:path}", tags=["Graph API"], summary="Details about a paper")
    async def paper(
        paper_id: str = Path(..., description="paperId, CorpusId:<n>, DOI:<doi>, ArXiv:<id>, ACL:<id>, PMID:<id> ..."),
        fields: str | None = Query(None),
    ) -> Response:
        return Response(await paper_payload(paper_id, fields), media_type="application/json")

    # ---- Recommendations API ----------------------------------------------------------------------
    @app.get(
        "/recommendations/v1/papers/forpaper/{paper_id:path}",
        tags=["Recommendations API"],
        summary="Papers similar to one paper (nearest neighbours of its proximity embedding)",
    )
    async def recommend_for_paper(
        paper_id: str = Path(...),
        limit: int = Query(100, ge=-10_000, le=10_000, description="At most 500"),
        fields: str | None = Query(None),
        from_: str = Query("recent", alias="from", description="Accepted for compatibility; the pool is the index"),
    ) -> Response:
        return Response(await for_paper_payload(paper_id, limit, fields), media_type="application/json")

    async def recommend(body: RecommendationRequest, limit: int, fields: str | None) -> Response:
        check_limit(limit, config.max_recommendations)
        if not body.positivePaperIds:
            raise ApiError(400, "positivePaperIds must name at least one paper")
        check_ids(body.positivePaperIds, "positivePaperIds", config.max_seed_papers)
        check_ids(body.negativePaperIds, "negativePaperIds", config.max_seed_papers)
        sel = selection(fields, allow_score=True)

        def run() -> dict[str, Any]:
            positive = index.resolve(body.positivePaperIds)
            negative = index.resolve(body.negativePaperIds)
            for given, found in zip(body.positivePaperIds + body.negativePaperIds, positive + negative, strict=True):
                if found is None:
                    raise _not_found(given)
            stored = index.vectors(paper_format, [r for r in positive + negative if r is not None])
            query = normalise(np.stack([stored[r] for r in positive])).mean(axis=0)
            if negative:
                query = query - config.negative_weight * normalise(np.stack([stored[r] for r in negative])).mean(axis=0)
            if not np.any(query):
                query = normalise(np.stack([stored[r] for r in positive])).mean(axis=0)
            records, scores = neighbours(query.astype(np.float32), limit, set(positive) | set(negative))
            return {"recommendedPapers": render(records, sel, scores)}

        return _json(await run_in_threadpool(run), config)

    @app.post(
        "/recommendations/v1/papers",
        tags=["Recommendations API"],
        summary="Papers like the positive examples and unlike the negative ones",
    )
    async def recommend_from_lists(
        body: RecommendationRequest,
        limit: int = Query(100, ge=-10_000, le=10_000, description="At most 500"),
        fields: str | None = Query(None),
    ) -> Response:
        return await recommend(body, limit, fields)

    @app.post("/recommendations/v1/papers/", include_in_schema=False)
    async def recommend_from_lists_slash(
        body: RecommendationRequest, limit: int = Query(100, ge=-10_000, le=10_000), fields: str | None = Query(None)
    ) -> Response:
        return await recommend(body, limit, fields)

    # ---- ours -------------------------------------------------------------------------------------
    @app.post("/embed", tags=["sciembed"], summary="Embed papers or queries with the index's model, any format")
    async def embed(body: EmbedRequest) -> Response:
        try:
            fmt = canonical_format(body.format)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        if (body.papers is None) == (body.queries is None):
            raise ApiError(400, "send exactly one of papers or queries")
        items: list[str | dict] = []
        ids: list[str | None] = []
        if body.queries is not None:
            for query in body.queries:
                if not query.strip() or len(query) > config.max_text_chars:
                    raise ApiError(400, f"every query must be non-empty and at most {config.max_text_chars} characters")
            items, ids = list(body.queries), [None] * len(body.queries)
        else:
            for paper in body.papers or []:
                texts = [t for t in (paper.title, paper.abstract) if t and t.strip()]
                if not texts:
                    raise ApiError(
                        400, f"paper {paper.paper_id or ''}: needs a title or an abstract".replace("  ", " ")
                    )
                if any(len(t) > config.max_text_chars for t in texts):
                    raise ApiError(400, f"title and abstract must be at most {config.max_text_chars} characters each")
                items.append({"paper_id": paper.paper_id or "-", "title": paper.title, "abstract": paper.abstract})
                ids.append(paper.paper_id)
        if not items:
            raise ApiError(400, "nothing to embed")
        if len(items) > config.max_embed_items:
            raise ApiError(400, f"at most {config.max_embed_items} papers or queries per request, got {len(items)}")
        vectors = await asyncio.gather(*(embed_one(item, fmt) for item in items))
        return _json(
            {
                "model": model_name,
                "format": fmt,
                "dimension": index.dimension,
                "embeddings": [
                    {"paperId": i, "vector": [float(x) for x in v]} for i, v in zip(ids, vectors, strict=True)
                ],
            },
            config,
        )

    @app.get("/health", tags=["sciembed"], summary="Liveness and what is served")
    async def health() -> Response:
        m = index.manifest
        return _json(
            {
                "status": "ok",
                "papers": m.count,
                "model": model_name,
                "fingerprint": m.model.fingerprint,
                "dimension": m.dimension,
                "formats": list(m.formats),
                "kind": m.kind,
                "generation": m.generation,
            },
            config,
        )

    @app.get("/api/map", tags=["sciembed"], summary="Points of the 2-D corpus map (an even sample)")
    async def corpus_map(limit: int = Query(5000, ge=-10_000, le=1_000_000)) -> Response:
        check_limit(limit, config.max_map_points)
        points = await run_in_threadpool(index.map_points, limit)
        return _json(
            {
                "total": len(index),
                "points": [
                    {
                        "paperId": p["paper_id"],
                        "title": p["title"],
                        "year": p["year"],
                        "field": (json.loads(p["fields_of_study"]) or [None])[0],
                        "cluster": p["cluster"],
                        "x": round(p["map_x"], 5),
                        "y": round(p["map_y"], 5),
                    }
                    for p in points
                ],
            },
            config,
        )

    if config.fast_path:
        app.fast_path = FastPath(
            guard,
            {
                "search": search_payload,
                "paper": paper_payload,
                "for_paper": for_paper_payload,
            },
            ApiError,
        )

    @app.get("/", include_in_schema=False)
    async def search_page() -> HTMLResponse:
        return HTMLResponse(page_html())

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    return app
