"""Every endpoint of the S2-compatible API and every error case, in process (TestClient)."""

from __future__ import annotations

import numpy as np
import pytest
from servehelpers import (  # noqa: F401  (fixtures)
    client,
    corpus_records,
    exact_neighbours,
    index_folder,
    papers_file,
    serve_model_folder,
    tiny_encoder,
)

RECORDS = corpus_records()
IDS = [r["paper_id"] for r in RECORDS]


def test_paper_lookup_default_and_all_fields(client):
    response = client.get("/graph/v1/paper/A00-1043")
    assert response.status_code == 200
    assert set(response.json()) == {"paperId", "title"}
    record = next(r for r in RECORDS if r["paper_id"] == "A00-1043")
    fields = "corpusId,externalIds,url,title,abstract,venue,year,authors,fieldsOfStudy,publicationDate"
    body = client.get("/graph/v1/paper/A00-1043", params={"fields": fields}).json()
    assert body["paperId"] == "A00-1043" and body["title"] == record["title"] and body["year"] == record["year"]
    assert body["abstract"] == " ".join(record["abstract"].split())
    assert body["authors"] == [{"authorId": None, "name": "Author 1"}, {"authorId": None, "name": "Second Author"}]
    assert body["externalIds"]["DOI"] == record["doi"] and body["externalIds"]["CorpusId"] == body["corpusId"]
    assert body["fieldsOfStudy"] == record["fields_of_study"] and body["venue"] == "ACL"


def test_ids_with_slashes_colons_and_prefixes(client):
    assert client.get("/graph/v1/paper/hep-th/9601001").json()["paperId"] == "hep-th/9601001"
    assert client.get("/graph/v1/paper/arXiv:hep-th/9601001").json()["paperId"] == "hep-th/9601001"
    assert client.get("/graph/v1/paper/DOI:10.18653/V1/A00-1043").json()["paperId"] == "A00-1043"
    corpus_id = client.get("/graph/v1/paper/A00-1043?fields=corpusId").json()["corpusId"]
    assert client.get(f"/graph/v1/paper/CorpusId:{corpus_id}").json()["paperId"] == "A00-1043"


def test_embedding_fields(client, tiny_encoder):
    record = next(r for r in RECORDS if r["paper_id"] == "A00-1043")
    expected = tiny_encoder.encode([record], format="proximity")[0]
    for field in ("embedding", "embedding.specter_v2", "embedding.specter_v1", "embedding.proximity"):
        body = client.get("/graph/v1/paper/A00-1043", params={"fields": f"title,{field}"}).json()
        assert body["embedding"]["model"].startswith("tiny")
        np.testing.assert_allclose(body["embedding"]["vector"], expected, rtol=1e-4, atol=1e-5)
    response = client.get("/graph/v1/paper/A00-1043", params={"fields": "embedding.adhoc_query"})
    assert response.status_code == 400  # not a stored format of this index


@pytest.mark.parametrize(
    "path, params, status, message",
    [
        ("/graph/v1/paper/nope-123", {}, 404, "Paper with id nope-123 not found"),
        ("/graph/v1/paper/CorpusId:999999", {}, 404, "not found"),
        ("/graph/v1/paper/DOI:10.1/none", {}, 404, "not found"),
        ("/graph/v1/paper/A00-1043", {"fields": "title,citationCount"}, 400, "Unrecognized or unsupported fields"),
        ("/graph/v1/paper/A00-1043", {"fields": "x" * 3000}, 400, "fields"),
        ("/graph/v1/paper/" + "a" * 1200, {}, 400, "1000 characters"),
    ],
)
def test_paper_lookup_errors(client, path, params, status, message):
    response = client.get(path, params=params)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_batch_keeps_request_order_with_nulls(client):
    ids = ["C02-1011", "missing", "A00-1043", "DOI:10.18653/v1/A00-2004", "hep-th/9601001"]
    response = client.post("/graph/v1/paper/batch", params={"fields": "title,year"}, json={"ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert [b and b["paperId"] for b in body] == ["C02-1011", None, "A00-1043", "A00-2004", "hep-th/9601001"]
    assert set(body[0]) == {"paperId", "title", "year"}


@pytest.mark.parametrize(
    "params, body, message",
    [
        ({}, {"ids": ["x"] * 501}, "at most 500"),
        ({}, {}, "ids"),
        ({}, {"ids": "A00-1043"}, "ids"),
        ({}, {"ids": [""]}, "non-empty"),
        ({"fields": "title,bogus"}, {"ids": ["A00-1043"]}, "Unrecognized"),
    ],
)
def test_batch_errors(client, params, body, message):
    response = client.post("/graph/v1/paper/batch", params=params, json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_batch_invalid_json_is_400(client):
    response = client.post("/graph/v1/paper/batch", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()


def test_search_ranks_by_the_query_adapter_and_pages_like_s2(client, tiny_encoder, index_folder):
    query = "part-of-speech tagging with Markov models"
    first = client.get("/graph/v1/paper/search", params={"query": query, "limit": 5, "fields": "title,score"}).json()
    assert first["total"] == len(RECORDS) and first["offset"] == 0 and first["next"] == 5 and len(first["data"]) == 5
    expected = exact_neighbours(index_folder, tiny_encoder.encode([query], format="adhoc_query")[0], 10)
    assert [p["paperId"] for p in first["data"]] == expected[:5]
    scores = [p["score"] for p in first["data"]]
    assert scores == sorted(scores, reverse=True)
    second = client.get("/graph/v1/paper/search", params={"query": query, "offset": 5, "limit": 5}).json()
    assert [p["paperId"] for p in second["data"]] == expected[5:10] and second["next"] == 10
    last = client.get("/graph/v1/paper/search", params={"query": query, "offset": 55, "limit": 10}).json()
    assert len(last["data"]) == 5 and "next" not in last


def test_search_year_filter(client):
    body = client.get(
        "/graph/v1/paper/search", params={"query": "parsing", "year": "2000-2004", "fields": "year"}
    ).json()
    assert body["data"] and all(2000 <= p["year"] <= 2004 for p in body["data"])
    assert body["total"] == sum(1 for r in RECORDS if 2000 <= r["year"] <= 2004)
    single = client.get("/graph/v1/paper/search", params={"query": "parsing", "year": "2001", "fields": "year"}).json()
    assert {p["year"] for p in single["data"]} == {2001}


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "query"),
        ({"query": "   "}, "must not be empty"),
        ({"query": "x" * 10_001}, "at most"),
        ({"query": "x", "limit": 101}, "limit must be between 1 and 100"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": "ten"}, "limit"),
        ({"query": "x", "offset": -1}, "offset"),
        ({"query": "x", "offset": 950, "limit": 100}, "offset + limit"),
        ({"query": "x", "fields": "title,nonsense"}, "Unrecognized"),
        ({"query": "x", "year": "last year"}, "Invalid year"),
        ({"query": "x", "year": "-"}, "Invalid year"),
    ],
)
def test_search_errors(client, params, message):
    response = client.get("/graph/v1/paper/search", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_recommendations_for_paper_are_its_neighbours(client, index_folder):
    from sciembed.serve import PaperIndex

    body = client.get(
        "/recommendations/v1/papers/forpaper/A00-1043", params={"limit": 7, "fields": "title,score"}
    ).json()
    ids = [p["paperId"] for p in body["recommendedPapers"]]
    index = PaperIndex.open(index_folder)
    row = index.resolve(["A00-1043"])[0]
    expected = exact_neighbours(index_folder, index.vectors("proximity", [row])[row], 8)
    assert "A00-1043" not in ids and ids == [e for e in expected if e != "A00-1043"][:7]
    slash = client.get("/recommendations/v1/papers/forpaper/hep-th/9601001", params={"limit": 3}).json()
    assert len(slash["recommendedPapers"]) == 3


@pytest.mark.parametrize(
    "path, params, status",
    [
        ("/recommendations/v1/papers/forpaper/unknown", {}, 404),
        ("/recommendations/v1/papers/forpaper/A00-1043", {"limit": 0}, 400),
        ("/recommendations/v1/papers/forpaper/A00-1043", {"limit": 501}, 400),
        ("/recommendations/v1/papers/forpaper/A00-1043", {"fields": "references"}, 400),
    ],
)
def test_recommendations_for_paper_errors(client, path, params, status):
    response = client.get(path, params=params)
    assert response.status_code == status and "error" in response.json()


def test_recommendations_from_positive_and_negative_lists(client):
    positive, negative = ["A00-1043", "A00-2004"], ["C02-1011"]
    plain = client.post("/recommendations/v1/papers", params={"limit": 10}, json={"positivePaperIds": positive}).json()
    mixed = client.post(
        "/recommendations/v1/papers/",  # the path S2's own examples use
        params={"limit": 10, "fields": "title,score"},
        json={"positivePaperIds": positive, "negativePaperIds": negative},
    ).json()
    for body in (plain, mixed):
        ids = [p["paperId"] for p in body["recommendedPapers"]]
        assert len(ids) == 10 and not set(ids) & set(positive + negative)
    assert [p["paperId"] for p in plain["recommendedPapers"]] != [p["paperId"] for p in mixed["recommendedPapers"]]


@pytest.mark.parametrize(
    "body, params, status, message",
    [
        ({"positivePaperIds": []}, {}, 400, "at least one"),
        ({}, {}, 400, "positivePaperIds"),
        ({"positivePaperIds": ["missing"]}, {}, 404, "missing not found"),
        ({"positivePaperIds": ["A00-1043"], "negativePaperIds": ["gone"]}, {}, 404, "gone not found"),
        ({"positivePaperIds": ["A00-1043"]}, {"limit": 1000}, 400, "limit"),
        ({"positivePaperIds": ["A00-1043"] * 501}, {}, 400, "at most 500"),
    ],
)
def test_recommendations_errors(client, body, params, status, message):
    response = client.post("/recommendations/v1/papers", params=params, json=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_embed_papers_and_queries_in_any_format(client, tiny_encoder):
    papers = [{"paper_id": "x1", "title": "Neural parsing", "abstract": "We parse."}, {"title": "Only a title"}]
    body = client.post("/embed", json={"format": "classification", "papers": papers}).json()
    assert body["format"] == "classification" and body["dimension"] == tiny_encoder.dimension
    assert [e["paperId"] for e in body["embeddings"]] == ["x1", None]
    expected = tiny_encoder.encode([{"paper_id": "a", **p} for p in papers], format="classification")
    np.testing.assert_allclose([e["vector"] for e in body["embeddings"]], expected, rtol=1e-4, atol=1e-5)
    queries = client.post("/embed", json={"format": "[QRY]", "queries": ["graph neural networks"]}).json()
    assert queries["format"] == "adhoc_query"
    np.testing.assert_allclose(
        queries["embeddings"][0]["vector"],
        tiny_encoder.encode(["graph neural networks"], format="adhoc_query")[0],
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ({"format": "sideways", "queries": ["x"]}, "unknown task format"),
        ({"queries": ["x"], "papers": [{"title": "y"}]}, "exactly one"),
        ({}, "exactly one"),
        ({"queries": []}, "nothing to embed"),
        ({"queries": [""]}, "non-empty"),
        ({"queries": ["x" * 10_001]}, "at most"),
        ({"queries": ["x"] * 65}, "at most 64"),
        ({"papers": [{"paper_id": "e"}]}, "needs a title or an abstract"),
        ({"papers": [{"title": "t" * 10_001}]}, "at most"),
        ({"papers": "not a list"}, "papers"),
    ],
)
def test_embed_errors(client, body, message):
    response = client.post("/embed", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_health_openapi_page_map_and_unknown_routes(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["papers"] == len(RECORDS) and health["formats"] == ["proximity"]
    schema = client.get("/openapi.json").json()
    for path in ("/graph/v1/paper/search", "/graph/v1/paper/batch", "/recommendations/v1/papers", "/embed", "/health"):
        assert path in schema["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text and "<script src=" not in page.text
    points = client.get("/api/map", params={"limit": 50}).json()
    assert points["total"] == len(RECORDS) and 0 < len(points["points"]) <= 50
    assert {"paperId", "x", "y", "cluster", "field"} <= set(points["points"][0])
    assert client.get("/api/map", params={"limit": 10**6}).status_code == 400
    missing = client.get("/graph/v2/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = client.delete("/graph/v1/paper/batch")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_size_limits(index_folder, tiny_encoder):
    from servehelpers import make_client

    with make_client(index_folder, tiny_encoder, max_response_bytes=2000) as small:
        response = small.post("/graph/v1/paper/batch", params={"fields": "abstract"}, json={"ids": IDS})
        assert response.status_code == 400 and "maximum size" in response.json()["error"]
    from sciembed.serve.guard import GuardConfig

    with make_client(index_folder, tiny_encoder, guard=GuardConfig(max_body_bytes=100)) as capped:
        response = capped.post("/graph/v1/paper/batch", json={"ids": ["x" * 50] * 5})
        assert response.status_code == 413 and "error" in response.json()

        def chunks():
            yield b'{"ids": ["'
            yield b"y" * 200
            yield b'"]}'

        streamed = capped.post("/graph/v1/paper/batch", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


def test_api_keys_hide_everything_without_a_valid_key(index_folder, tiny_encoder):
    from servehelpers import make_client

    from sciembed.serve.guard import GuardConfig

    with make_client(index_folder, tiny_encoder, guard=GuardConfig(api_keys={"good": None})) as keyed:
        answers = [
            keyed.get("/graph/v1/paper/A00-1043"),
            keyed.get("/graph/v1/paper/no-such-paper"),
            keyed.get("/graph/v1/paper/A00-1043", headers={"x-api-key": "bad"}),
            keyed.post("/graph/v1/paper/batch", json={"ids": ["A00-1043"]}),
            keyed.get("/health"),
            keyed.get("/api/map"),
            keyed.get("/no/such/route"),
        ]
        assert {a.status_code for a in answers} == {403}
        assert {a.text for a in answers} == {'{"message": "Forbidden"}'}
        ok = keyed.get("/graph/v1/paper/A00-1043", headers={"x-api-key": "good"})
        assert ok.status_code == 200 and ok.json()["paperId"] == "A00-1043"
        assert keyed.get("/").status_code == 200 and keyed.get("/openapi.json").status_code == 200


def test_rate_limits_per_key_with_retry_after(index_folder, tiny_encoder):
    from servehelpers import make_client

    from sciembed.serve.guard import GuardConfig

    guard = GuardConfig(api_keys={"slow": 0.5, "fast": None}, rate_limit=1000.0)
    with make_client(index_folder, tiny_encoder, guard=guard) as limited:
        slow = [limited.get("/health", headers={"x-api-key": "slow"}) for _ in range(3)]
        assert [r.status_code for r in slow] == [200, 429, 429]
        assert int(slow[1].headers["retry-after"]) >= 1
        assert slow[1].json() == {"message": slow[1].json()["message"], "code": "429"}
        assert "Too Many Requests" in slow[1].json()["message"]
        fast = [limited.get("/health", headers={"x-api-key": "fast"}).status_code for _ in range(20)]
        assert fast == [200] * 20  # another key's bucket is untouched
    with make_client(index_folder, tiny_encoder, guard=GuardConfig(rate_limit=2.0, burst=2.0)) as anonymous:
        statuses = [anonymous.get("/health").status_code for _ in range(4)]
        assert statuses[:2] == [200, 200] and statuses[-1] == 429


def test_token_bucket_refills():
    from sciembed.serve.guard import TokenBuckets

    buckets = TokenBuckets()
    assert buckets.take("k", rate=2.0, burst=1.0, now=0.0) == 0.0
    assert buckets.take("k", rate=2.0, burst=1.0, now=0.1) == pytest.approx(0.4)
    assert buckets.take("k", rate=2.0, burst=1.0, now=0.6) == 0.0


def test_refuses_a_model_that_did_not_build_the_index(index_folder):
    from conftest import make_tiny_model

    from sciembed.serve import PaperIndex
    from sciembed.serve.app import create_app

    with pytest.raises(ValueError, match="not the model the index"):
        create_app(PaperIndex.open(index_folder), make_tiny_model(seed=5, formats=("proximity",)))


def test_service_picks_up_papers_added_while_it_runs(tmp_path, index_folder, tiny_encoder):
    import shutil

    from servehelpers import make_client

    from sciembed.serve import PaperIndex

    folder = tmp_path / "copy"
    shutil.copytree(index_folder, folder)
    with make_client(folder, tiny_encoder, refresh_seconds=0.1) as live:
        assert live.get("/graph/v1/paper/NEW-1").status_code == 404
        writer = PaperIndex.open(folder, writable=True)
        paper = {"paper_id": "NEW-1", "title": "A paper added while serving", "abstract": "Fresh."}
        vectors = {"proximity": tiny_encoder.encode([paper], format="proximity")}
        writer.add([paper], vectors, fingerprint=tiny_encoder.fingerprint)
        writer.close()
        import time

        deadline = time.monotonic() + 10
        while live.get("/graph/v1/paper/NEW-1").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live.get("/graph/v1/paper/NEW-1").json()["title"] == "A paper added while serving"
        assert live.get("/health").json()["papers"] == len(RECORDS) + 1
