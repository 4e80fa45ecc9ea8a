"""PaperIndex: incremental adds, duplicates, model checks, crash safety, the index kinds, calibration."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from sciembed.serve import ModelInfo, PaperIndex  # noqa: E402
from sciembed.serve import vectors as faiss_io  # noqa: E402

DIM = 16
INFO = ModelInfo(name="test-model", fingerprint="f" * 64, dimension=DIM, source="tests")
REPO = Path(__file__).resolve().parents[2]


def papers(start: int, stop: int) -> list[dict]:
    return [
        {
            "paper_id": f"P{i}",
            "title": f"Paper {i}",
            "abstract": f"About {i}",
            "year": 1990 + i % 30,
            "doi": f"10.1/AB{i}",
        }
        for i in range(start, stop)
    ]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def exact_top(corpus: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    return list(np.argsort(-(unit @ (query / np.linalg.norm(query))))[:k])


def random_query_recall(index: PaperIndex, corpus: np.ndarray, rng: np.random.Generator) -> float:
    """recall@10 of 100 random unit queries against exact search over the (unit) ``corpus``."""
    queries = faiss_io.normalise(rng.normal(size=(100, corpus.shape[1])).astype(np.float32))
    truth = np.argsort(-(corpus @ queries.T), axis=0)[:10].T
    hits = index.search("proximity", queries, 10)
    return float(np.mean([len({h.row_id for h in row} & set(t)) / 10 for row, t in zip(hits, truth, strict=True)]))


def test_flat_index_is_exact_and_incremental(tmp_path):
    corpus = vectors(300)
    index = PaperIndex.create(tmp_path / "idx", INFO, formats=("proximity",), expected_size=300)
    assert index.manifest.kind == "flat"
    index.add(papers(0, 200), {"proximity": corpus[:200]}, fingerprint=INFO.fingerprint)
    report = index.add(papers(150, 300), {"proximity": corpus[150:]}, fingerprint=INFO.fingerprint)
    assert (report.added, report.skipped_existing, len(index)) == (100, 50, 300)
    query = vectors(1, seed=9)[0]
    hits = index.search("proximity", query, 10)[0]
    assert [h.paper_id for h in hits] == [f"P{i}" for i in exact_top(corpus, query, 10)]
    assert hits[0].score == pytest.approx(
        float(
            corpus[int(hits[0].paper_id[1:])]
            @ query
            / np.linalg.norm(corpus[int(hits[0].paper_id[1:])])
            / np.linalg.norm(query)
        ),
        abs=1e-5,
    )
    index.close()
    reopened = PaperIndex.open(tmp_path / "idx")
    assert len(reopened) == 300 and reopened.store.count(reopened.manifest.generation) == 300
    record = reopened.get(["P7"])[0]
    assert record["title"] == "Paper 7" and record["year"] == 1997 and record["external_ids"]["DOI"] == "10.1/AB7"
    # raw vectors come back exactly as added
    np.testing.assert_array_equal(reopened.vectors("proximity", [record["row_id"]])[record["row_id"]], corpus[7])
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert (
        manifest["model"]["fingerprint"] == INFO.fingerprint
        and manifest["count"] == 300
        and manifest["dimension"] == DIM
    )


def test_lookup_by_prefixed_ids(tmp_path):
    index = PaperIndex.create(tmp_path / "idx", INFO)
    rows = papers(0, 5) + [{"paper_id": "hep-th/9601001", "title": "Old arXiv id"}]
    index.add(rows, {"proximity": vectors(6)}, fingerprint=INFO.fingerprint)
    got = index.get(
        ["DOI:10.1/ab3", "CorpusId:2", "ArXiv:hep-th/9601001", "hep-th/9601001", "CorpusId:99", "DOI:x", "nope"]
    )
    assert [g and g["paper_id"] for g in got] == ["P3", "P2", "hep-th/9601001", "hep-th/9601001", None, None, None]


def test_refuses_other_models_and_bad_input(tmp_path):
    index = PaperIndex.create(tmp_path / "idx", INFO, formats=("proximity", "adhoc_query"))
    good = {"proximity": vectors(3), "adhoc_query": vectors(3, 1)}
    with pytest.raises(ValueError, match="fingerprint"):
        index.add(papers(0, 3), good, fingerprint="0" * 64)
    with pytest.raises(ValueError, match="dimension"):
        index.add(
            papers(0, 3), {"proximity": np.zeros((3, 8)), "adhoc_query": np.zeros((3, 8))}, fingerprint=INFO.fingerprint
        )
    with pytest.raises(ValueError, match="formats"):
        index.add(papers(0, 3), {"proximity": vectors(3)}, fingerprint=INFO.fingerprint)
    with pytest.raises(ValueError, match="twice"):
        index.add(papers(0, 2) + papers(0, 1), good, fingerprint=INFO.fingerprint)
    bad = vectors(3)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="P1 is not finite"):
        index.add(papers(0, 3), {"proximity": bad, "adhoc_query": vectors(3)}, fingerprint=INFO.fingerprint)
    index.add(papers(0, 3), good, fingerprint=INFO.fingerprint)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(papers(2, 5), good, fingerprint=INFO.fingerprint, on_duplicate="error")
    assert len(index) == 3
    with pytest.raises(FileExistsError):
        PaperIndex.create(tmp_path / "idx", INFO)


def test_one_writer_at_a_time(tmp_path):
    index = PaperIndex.create(tmp_path / "idx", INFO)
    with pytest.raises(RuntimeError, match="another process"):
        PaperIndex.open(tmp_path / "idx", writable=True)
    reader = PaperIndex.open(tmp_path / "idx")
    with pytest.raises(PermissionError):
        reader.add(papers(0, 1), {"proximity": vectors(1)}, fingerprint=INFO.fingerprint)
    index.add(papers(0, 4), {"proximity": vectors(4)}, fingerprint=INFO.fingerprint)
    assert len(reader) == 0 and reader.refresh() and len(reader) == 4
    assert reader.get(["P3"])[0]["title"] == "Paper 3"


CRASH = """
import os, sys, numpy as np
sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
from test_index import INFO, papers, vectors
from sciembed.serve import PaperIndex, layout, index as index_module
index = PaperIndex.open({folder!r}, writable=True)
def die(*args, **kwargs):
    os._exit(17)  # the process dies after SQLite and FAISS files were written, before the commit point
index_module.write_manifest = die
index.add(papers(100, 200), {{"proximity": vectors(100, 5)}}, fingerprint=INFO.fingerprint)
"""


def test_killed_add_leaves_the_index_as_before(tmp_path):
    folder = tmp_path / "idx"
    index = PaperIndex.create(folder, INFO, kind="hnsw")
    before = vectors(100)
    index.add(papers(0, 100), {"proximity": before}, fingerprint=INFO.fingerprint)
    manifest_before = (folder / "index.json").read_bytes()
    index.close()
    script = CRASH.format(src=str(REPO / "src"), tests=str(Path(__file__).parent), folder=str(folder))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True)
    assert result.returncode == 17, result.stderr
    assert (folder / "index.json").read_bytes() == manifest_before
    reader = PaperIndex.open(folder)
    assert len(reader) == 100 and reader.get(["P150"]) == [None]
    assert all(h.paper_id in {f"P{i}" for i in range(100)} for h in reader.search("proximity", vectors(5, 5), 20)[0])
    reader.close()
    writer = PaperIndex.open(folder, writable=True)  # recovers: the half-written add is gone
    assert writer.store.count(10**9) == 100
    assert sorted(p.name for p in folder.glob("vectors-*")) == [writer.manifest.files["proximity"]]
    report = writer.add(papers(100, 200), {"proximity": vectors(100, 5)}, fingerprint=INFO.fingerprint)
    assert report.added == 100 and len(writer) == 200


def test_failed_add_rolls_back_in_process(tmp_path):
    from sciembed.serve.layout import vector_file

    index = PaperIndex.create(tmp_path / "idx", INFO)
    index.add(papers(0, 10), {"proximity": vectors(10)}, fingerprint=INFO.fingerprint)
    # the next generation's FAISS file cannot be put in place: a real OSError after SQLite took the rows
    obstacle = tmp_path / "idx" / vector_file("proximity", index.manifest.generation + 1)
    obstacle.mkdir()
    with pytest.raises(OSError):
        index.add(papers(10, 20), {"proximity": vectors(10, 1)}, fingerprint=INFO.fingerprint)
    assert len(index) == 10 and index.get(["P15"]) == [None]
    assert len(index.search("proximity", vectors(1)[0], 50)[0]) == 10
    assert not [p for p in (tmp_path / "idx").iterdir() if ".tmp" in p.name]  # no temporary file left
    obstacle.rmdir()
    index.add(papers(10, 20), {"proximity": vectors(10, 1)}, fingerprint=INFO.fingerprint)
    assert len(index) == 20


def test_a_full_disk_raises_instead_of_writing_a_truncated_vectors_file():
    """faiss.write_index to a path only prints the error of its closing flush; ours raises."""
    import faiss

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full (a device whose writes fail with ENOSPC) on this system")
    small = faiss.IndexFlatIP(DIM)
    small.add(vectors(10))
    with open("/dev/full", "wb", buffering=0) as handle, pytest.raises(OSError, match="No space left"):
        faiss_io.write(small, handle)  # the error comes out of the write itself, through FAISS


@pytest.mark.parametrize("kind", ["hnsw", "ivfflat", "ivfpq", "ivfpqfs"])
def test_approximate_kinds_find_the_exact_neighbours(tmp_path, kind):
    centres = vectors(20, 3) * 3
    rng = np.random.default_rng(4)
    corpus = (centres[rng.integers(0, 20, 3000)] + rng.normal(size=(3000, DIM))).astype(np.float32)
    params = {"hnsw": None, "ivfflat": {"nlist": 32}, "ivfpq": {"nlist": 32, "m": 8}, "ivfpqfs": {"nlist": 32}}[kind]
    index = PaperIndex.create(tmp_path / "idx", INFO, kind=kind, expected_size=3000, params=params)
    if kind != "hnsw":
        with pytest.raises(ValueError, match="trained first"):
            index.add(papers(0, 1), {"proximity": corpus[:1]}, fingerprint=INFO.fingerprint)
        index.train(corpus[:2000])
    for start in range(0, 3000, 1000):  # shard by shard
        index.add(
            papers(start, start + 1000), {"proximity": corpus[start : start + 1000]}, fingerprint=INFO.fingerprint
        )
    queries = (centres[rng.integers(0, 20, 20)] + rng.normal(size=(20, DIM))).astype(np.float32)  # not indexed
    recall = np.mean(
        [
            len({h.row_id for h in hits} & set(exact_top(corpus, q, 10))) / 10
            for q, hits in zip(queries, index.search("proximity", queries, 10), strict=True)
        ]
    )
    assert recall >= 0.9
    points = index.map_points(500)
    assert 0 < len(points) <= 500 and {"map_x", "map_y", "cluster"} <= set(points[0])


@pytest.mark.parametrize("kind", ["hnsw", "ivfflat", "ivfpqfs"])
def test_calibration_raises_the_search_knob_until_recall_meets_the_target(tmp_path, kind):
    """A start far too low (efSearch 1 / nprobe 1 of 64 lists) on hard data: the commit measures recall
    against exact search and raises the knob; recall on queries that are not in the index follows."""
    rng = np.random.default_rng(7)
    corpus = faiss_io.normalise(rng.normal(size=(4000, 24)).astype(np.float32))  # no clusters: hard
    start = {"efSearch": 1, "M": 8, "efConstruction": 40} if kind == "hnsw" else {"nprobe": 1, "nlist": 64}
    if kind == "ivfpqfs":  # on structureless data 4-bit codes rank poorly: re-rank more candidates
        start["rerank"] = 60
    folder = tmp_path / "idx"
    index = PaperIndex.create(folder, replace(INFO, dimension=24), kind=kind, params=start)
    if kind != "hnsw":
        index.train(corpus)
    index.add(papers(0, 4000), {"proximity": corpus}, fingerprint=INFO.fingerprint)
    knob = "efSearch" if kind == "hnsw" else "nprobe"
    calibration = index.manifest.params["calibration"]
    assert index.manifest.params[knob] == calibration[knob] > 1
    assert calibration["recall_at_10"] >= 0.96 and calibration["vectors"] == 4000
    index.close()
    reader = PaperIndex.open(folder)  # the chosen setting is what a server opens
    assert reader.manifest.params[knob] == calibration[knob]
    assert random_query_recall(reader, corpus, rng) >= 0.9
    reader.close()


def test_fast_scan_reranks_exactly_from_the_unit_vector_file(tmp_path):
    """IVF-PQ fast scan: 4-bit codes find candidates, the scores returned are exact cosines read from the
    memory-mapped unit-vector file, which a reader of the committed index maps too."""
    rng = np.random.default_rng(5)
    corpus = rng.normal(size=(3000, DIM)).astype(np.float32)
    folder = tmp_path / "idx"
    index = PaperIndex.create(folder, INFO, kind="ivfpqfs", params={"nlist": 16, "nprobe": 16})
    assert index.manifest.params["m"] == 4 and index.manifest.unit_vectors == {"proximity": "unit-proximity.f32"}
    index.train(corpus[:2000])
    index.add(papers(0, 3000), {"proximity": corpus}, fingerprint=INFO.fingerprint)
    index.close()
    assert (folder / "unit-proximity.f32").stat().st_size == 3000 * DIM * 4
    reader = PaperIndex.open(folder)
    query = rng.normal(size=DIM).astype(np.float32)
    hits = reader.search("proximity", query, 10)[0]
    unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    exact = unit @ (query / np.linalg.norm(query))
    assert [h.score for h in hits] == pytest.approx([float(exact[h.row_id]) for h in hits], abs=1e-5)
    assert len({h.row_id for h in hits} & set(exact_top(corpus, query, 10))) >= 9  # all 16 lists probed
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    reader.close()


def test_held_out_queries_make_calibration_honest(tmp_path):
    """Queries that are near-copies of indexed vectors overstate recall; held-out queries (their own paper
    left out) measure what a new query gets, and the commit takes the larger knob of the two sets."""
    rng = np.random.default_rng(11)
    dim = 24
    corpus = faiss_io.normalise(rng.normal(size=(4000, dim)).astype(np.float32))
    folder = tmp_path / "idx"
    index = PaperIndex.create(folder, replace(INFO, dimension=dim), kind="ivfflat", params={"nprobe": 1, "nlist": 64})
    index.train(corpus)
    index.add(papers(0, 4000), {"proximity": corpus}, fingerprint=INFO.fingerprint, commit=False)
    held_ids = [f"P{i}" for i in range(0, 4000, 20)]
    # queries far from their own paper (which calibration leaves out): the hard case a search query is
    index.set_held_out_queries(held_ids, faiss_io.normalise(rng.normal(size=(len(held_ids), dim))))
    with pytest.raises(ValueError, match="shape"):
        index.set_held_out_queries(held_ids, np.zeros((3, dim)))
    index.commit()
    calibration = index.manifest.params["calibration"]
    assert {"recall_at_10_indexed", "recall_at_10_held_out"} <= set(calibration)
    assert calibration["recall_at_10_held_out"] >= 0.95 + faiss_io.HELD_OUT_MARGIN or calibration["nprobe"] == 64
    assert random_query_recall(index, corpus, rng) >= 0.93
    index.close()


def test_an_index_without_unit_vectors_reranks_from_sqlite(tmp_path):
    """Indexes written before the unit-vector file existed re-rank from SQLite's stored vectors, alike."""
    rng = np.random.default_rng(6)
    corpus = rng.normal(size=(600, DIM)).astype(np.float32)
    folder = tmp_path / "idx"
    index = PaperIndex.create(folder, INFO, kind="ivfpqfs", params={"nlist": 16, "nprobe": 4})
    index.train(corpus)
    index.add(papers(0, 600), {"proximity": corpus}, fingerprint=INFO.fingerprint)
    queries = rng.normal(size=(5, DIM)).astype(np.float32)
    mapped = [[(h.row_id, round(h.score, 5)) for h in row] for row in index.search("proximity", queries, 10)]
    index.close()
    manifest = json.loads((folder / "index.json").read_text())
    del manifest["unit_vectors"]
    (folder / "index.json").write_text(json.dumps(manifest))
    (folder / "unit-proximity.f32").unlink()
    old = PaperIndex.open(folder)
    assert [[(h.row_id, round(h.score, 5)) for h in row] for row in old.search("proximity", queries, 10)] == mapped
    old.close()
