"""The hand-written fast path (serve/fastpath.py) answers exactly as the FastAPI routes do: same status, headers
and bytes for the same request, errors included; it hands FastAPI whatever it does not answer itself."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from servehelpers import (  # noqa: F401  (fixtures)
    index_folder,
    papers_file,
    serve_model_folder,
    tiny_encoder,
)

ALL_FIELDS = "corpusId,externalIds,url,title,abstract,venue,year,authors,fieldsOfStudy,publicationDate"
SEARCH = "/graph/v1/paper/search"
FOR_PAPER = "/recommendations/v1/papers/forpaper/"

# (path with query string, answered by the fast path itself?)
CASES = [
    (f"{SEARCH}?query=parsing&limit=5", True),
    (f"{SEARCH}?query=statistical+machine+translation&fields=title,year,score", True),
    (f"{SEARCH}?query=parsing&fields={ALL_FIELDS},embedding,score&limit=3", True),
    (f"{SEARCH}?query=parsing&fields=title,embedding.specter_v2", True),
    (f"{SEARCH}?query=parsing&offset=5&limit=3", True),
    (f"{SEARCH}?query=parsing&offset=58&limit=5", True),  # past the corpus: a short page, no next
    (f"{SEARCH}?query=parsing&offset=995&limit=5", True),
    (f"{SEARCH}?query=parsing&offset=996&limit=5", True),  # 400: beyond the 1,000-result window
    (f"{SEARCH}?query=parsing&limit=0", True),  # 400: limit must be between 1 and 100
    (f"{SEARCH}?query=parsing&limit=101", True),
    (f"{SEARCH}?query=parsing&limit=-5", True),
    (f"{SEARCH}?query=parsing&limit=007", True),
    (f"{SEARCH}?query=parsing&limit=abc", False),  # 400 from FastAPI's validation
    (f"{SEARCH}?query=parsing&limit=1.5", False),
    (f"{SEARCH}?query=parsing&limit=%2B5", False),
    (f"{SEARCH}?query=parsing&limit=%205", False),
    (f"{SEARCH}?query=parsing&limit=10001", False),
    (f"{SEARCH}?query=parsing&limit=", False),
    (f"{SEARCH}?query=parsing&offset=-1", False),
    (f"{SEARCH}?query=parsing&offset=10001", False),
    (f"{SEARCH}?query=parsing&offset=x", False),
    (f"{SEARCH}?limit=5", False),  # 400: query is required
    (SEARCH, False),
    (f"{SEARCH}?query=", False),
    (f"{SEARCH}?query=%20%20%20", True),  # 400: empty after stripping
    (f"{SEARCH}?query={'x' * 10_001}", True),  # 400: too long
    (f"{SEARCH}?query={'x' * 10_000}", True),
    (f"{SEARCH}?query=parsing&year=2000", True),
    (f"{SEARCH}?query=parsing&year=2000-2005&fields=year,score", True),
    (f"{SEARCH}?query=parsing&year=2010-", True),
    (f"{SEARCH}?query=parsing&year=-1999", True),
    (f"{SEARCH}?query=parsing&year=last+year", True),  # 400
    (f"{SEARCH}?query=parsing&fields=title,citationCount", True),  # 400: unknown field
    (f"{SEARCH}?query=parsing&fields={'x' * 3000}", True),
    (f"{SEARCH}?query=parsing&fields=embedding.adhoc_query", True),  # 400: not a stored format
    (f"{SEARCH}?query=a&query=parsing&limit=5&limit=2", True),  # repeated: the last one counts
    (f"{SEARCH}?query=%C3%9Cn%C3%AFc%C3%B6d%C3%A9+%E4%B8%AD%E6%96%87", True),
    (f"{SEARCH}?query=%ff%fe%00bad", True),  # invalid UTF-8 and a NUL
    (f"{SEARCH}?query=parsing&unknown=1", True),
    ("/graph/v1/paper/A00-1043", True),
    (f"/graph/v1/paper/A00-1043?fields={ALL_FIELDS}", True),
    ("/graph/v1/paper/A00-1043?fields=title,embedding", True),
    ("/graph/v1/paper/A00-1043?fields=embedding.proximity", True),
    ("/graph/v1/paper/A00-1043?fields=embedding.adhoc_query", True),  # 400
    ("/graph/v1/paper/A00-1043?fields=title,citationCount", True),  # 400
    ("/graph/v1/paper/A00-1043?fields=score", True),  # 400: no score in a lookup
    ("/graph/v1/paper/A00-1043?fields=", False),
    ("/graph/v1/paper/hep-th/9601001?fields=title,year", True),  # a slash in the id
    ("/graph/v1/paper/arXiv:hep-th/9601001", True),
    ("/graph/v1/paper/DOI:10.18653/V1/A00-1043", True),
    ("/graph/v1/paper/CorpusId:3", True),
    ("/graph/v1/paper/CorpusId:abc", True),  # 404
    ("/graph/v1/paper/CorpusId:99999999999999999999999", True),  # 404
    ("/graph/v1/paper/nope-123", True),  # 404
    ("/graph/v1/paper/DOI:10.1/none", True),  # 404
    ("/graph/v1/paper/" + "a" * 1200, True),  # 400: id too long
    ("/graph/v1/paper/%20", True),  # 400: blank id
    ("/graph/v1/paper/batch", True),  # GET: an id called "batch", as FastAPI's router reads it
    ("/graph/v1/paper/search/", True),
    ("/graph/v1/paper/A%2F1", True),
    ("/graph/v1/paper/", False),
    (f"{FOR_PAPER}A00-1043?limit=5&fields=title,score", True),
    (f"{FOR_PAPER}A00-1043", True),
    (f"{FOR_PAPER}hep-th/9601001?limit=3&from=all-cs", True),
    (f"{FOR_PAPER}DOI:10.18653/v1/A00-1043?limit=2&fields=embedding,year", True),
    (f"{FOR_PAPER}A00-1043?limit=0", True),  # 400
    (f"{FOR_PAPER}A00-1043?limit=501", True),  # 400
    (f"{FOR_PAPER}A00-1043?limit=x", False),
    (f"{FOR_PAPER}A00-1043?fields=title,bogus", True),  # 400
    (f"{FOR_PAPER}nope-123?limit=5", True),  # 404
    (f"{FOR_PAPER}A00-1043?from=", False),
]


def _client(index_folder, encoder, fast: bool, **config):
    from fastapi.testclient import TestClient

    from sciembed.serve import PaperIndex
    from sciembed.serve.app import ServeConfig, create_app

    app = create_app(PaperIndex.open(index_folder), encoder, ServeConfig(fast_path=fast, **config))
    answered = []
    if fast:  # count what the fast path answers itself
        original = app.fast_path.answer

        async def counting(*args, **kwargs):
            answered.append(args[0]["path"])
            await original(*args, **kwargs)

        app.fast_path.answer = counting
    return TestClient(app, raise_server_exceptions=False), answered


@contextmanager
def pair(index_folder, encoder, **config):
    fast, answered = _client(index_folder, encoder, True, **config)
    slow, _ = _client(index_folder, encoder, False, **config)
    with fast, slow:
        yield fast, slow, answered


@pytest.fixture(scope="module")
def clients(index_folder, tiny_encoder):
    with pair(index_folder, tiny_encoder) as both:
        yield both


def same(fast, slow, method: str, target: str, **kwargs):
    a, b = fast.request(method, target, **kwargs), slow.request(method, target, **kwargs)
    assert (a.status_code, a.headers.raw, a.content) == (b.status_code, b.headers.raw, b.content), target
    return a


@pytest.mark.parametrize("target, answered_fast", CASES, ids=[c[0][:60] for c in CASES])
def test_fast_path_answers_as_fastapi_does(clients, target, answered_fast):
    fast, slow, answered = clients
    before = len(answered)
    response = same(fast, slow, "GET", target)
    assert response.status_code < 500, response.text
    assert (len(answered) > before) == answered_fast, target
    if response.status_code != 200:
        assert set(response.json()) == {"error"}


def test_cases_cover_answers_and_every_error_kind(clients):
    fast, _, _ = clients
    statuses = {fast.get(target).status_code for target, _ in CASES}
    assert {200, 400, 404} <= statuses


def test_other_methods_and_bodies_go_to_fastapi(clients):
    fast, slow, answered = clients
    before = len(answered)
    same(fast, slow, "HEAD", f"{SEARCH}?query=parsing")
    same(fast, slow, "POST", f"{SEARCH}?query=parsing")  # 405
    same(fast, slow, "GET", f"{SEARCH}?query=parsing", content=b"x" * 10)
    same(fast, slow, "GET", "/graph/v1/paper/A00-1043", headers={"content-length": "5000000"})  # 413
    same(fast, slow, "POST", "/graph/v1/paper/batch", json={"ids": ["A00-1043", "nope"]})
    assert len(answered) == before


def test_api_keys_forbid_the_same_requests(index_folder, tiny_encoder):
    from sciembed.serve.guard import GuardConfig

    with pair(index_folder, tiny_encoder, guard=GuardConfig(api_keys={"k1": None})) as (fast, slow, answered):
        for target in (f"{SEARCH}?query=parsing", "/graph/v1/paper/A00-1043", f"{FOR_PAPER}nope?limit=3"):
            for headers in ({}, {"x-api-key": "wrong"}, {"X-API-KEY": "k1"}, {"x-api-key": ""}):
                response = same(fast, slow, "GET", target, headers=headers)
                assert response.status_code == (200 if headers.get("X-API-KEY") == "k1" else 403) or "nope" in target
                if not headers.get("X-API-KEY"):
                    assert response.json() == {"message": "Forbidden"}
            # two keys: the last one counts, in both paths
            same(fast, slow, "GET", target, headers=[("x-api-key", "wrong"), ("x-api-key", "k1")])
            same(fast, slow, "GET", target, headers=[("x-api-key", "k1"), ("x-api-key", "wrong")])
        assert len(answered) == 3 * 6


def test_rate_limits_count_both_paths_with_retry_after(index_folder, tiny_encoder):
    from sciembed.serve.guard import GuardConfig

    guard = GuardConfig(api_keys={"k1": 0.01}, burst=2)  # 2 requests, then one per 100 s
    with pair(index_folder, tiny_encoder, guard=guard) as (fast, slow, answered):
        headers = {"x-api-key": "k1"}
        first = same(fast, slow, "GET", f"{SEARCH}?query=parsing&limit=2", headers=headers)
        assert first.status_code == 200
        # one token left: FastAPI's path (a limit FastAPI validates) takes it, then the fast path is refused:
        # one set of buckets for both
        assert same(fast, slow, "GET", f"{SEARCH}?query=parsing&limit=x", headers=headers).status_code == 400
        for target in (f"{SEARCH}?query=parsing", "/graph/v1/paper/A00-1043", f"{FOR_PAPER}A00-1043"):
            refused = same(fast, slow, "GET", target, headers=headers)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "100"
            assert refused.json()["code"] == "429"
        assert len(answered) == 4  # the first search and the three refusals


def test_server_errors_answer_as_fastapi_does(index_folder, tiny_encoder, monkeypatch):
    with pair(index_folder, tiny_encoder) as (fast, slow, answered):

        def broken(*args, **kwargs):
            raise RuntimeError("disk gone")

        for client in (fast, slow):
            monkeypatch.setattr(client.app.state.index, "search", broken)
        response = same(fast, slow, "GET", f"{SEARCH}?query=parsing")
        assert response.status_code == 500 and response.text == "Internal Server Error" and answered


def test_the_schema_still_documents_the_fast_routes(clients):
    fast, slow, _ = clients
    schema = fast.get("/openapi.json").json()
    assert schema == slow.get("/openapi.json").json()
    for path in (SEARCH, "/graph/v1/paper/{paper_id}", "/recommendations/v1/papers/forpaper/{paper_id}"):
        assert "get" in schema["paths"][path]
    names = {p["name"] for p in schema["paths"][SEARCH]["get"]["parameters"]}
    assert names == {"query", "offset", "limit", "fields", "year"}


def test_serve_spec_switches_the_fast_path(index_folder, serve_model_folder):
    """`sciembed serve --no-fast-path` (ServeSpec.fast_path, also across worker processes) serves FastAPI only."""
    import gc

    from sciembed.serve.workers import ServeSpec, build_app

    for fast in (True, False):
        spec = ServeSpec.from_json(ServeSpec(str(index_folder), str(serve_model_folder), fast_path=fast).to_json())
        try:
            app = build_app(spec)
        finally:
            gc.unfreeze()  # build_app freezes the server process's objects; not this test process's
        assert (app.fast_path is not None) == fast
        app.state.index.close()
