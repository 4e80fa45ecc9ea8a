"""Every embeddings file says what wrote it; a resumed job refuses parts of another vector space."""

import json

import pyarrow.parquet as pq
import pytest
from conftest import PAPERS, RecordingEncoder, make_tiny_model

from sciembed import __version__
from sciembed.embed import embed_file
from sciembed.embed.metadata import METADATA_KEY, metadata_for, read_metadata


def _papers(tmp_path, n=12):
    path = tmp_path / "papers.jsonl"
    rows = [{**PAPERS[i % len(PAPERS)], "paper_id": f"p{i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_output_carries_metadata(tmp_path):
    model = make_tiny_model(formats=("proximity", "classification"), normalize=True)
    out = tmp_path / "out.parquet"
    embed_file(model, _papers(tmp_path), out, format="[CLF]", show_progress=False, chunk_size=5)
    meta = read_metadata(out)
    assert meta == metadata_for(model, "classification")
    assert (meta.model, meta.format, meta.adapter, meta.dimension, meta.normalized) == (
        "tiny",
        "classification",
        "classification",
        32,
        True,
    )
    assert meta.fingerprint == model.fingerprint and meta.sciembed_version == __version__
    raw = json.loads(pq.read_schema(out).metadata[METADATA_KEY])  # readable without sciembed too
    assert raw["fingerprint"] == model.fingerprint


def test_a_model_without_adapters_records_the_base(tmp_path):
    out = tmp_path / "out.parquet"
    embed_file(make_tiny_model(), _papers(tmp_path), out, format="adhoc_query", show_progress=False)
    meta = read_metadata(out)
    assert meta.format == "adhoc_query" and meta.adapter == "base" and meta.normalized is False


def test_resume_refuses_parts_of_another_space(tmp_path):
    papers, out = _papers(tmp_path), tmp_path / "out.parquet"
    model = make_tiny_model(formats=("proximity",))
    # Kill the job after its first chunk: parts/ keeps part 0 and the manifest.
    with pytest.raises(KeyboardInterrupt):
        dying = RecordingEncoder(model, fail_on=2, error=KeyboardInterrupt())
        embed_file(dying, papers, out, chunk_size=5, show_progress=False)
    part = out.with_name(out.name + ".parts") / "part-00000.parquet"
    assert part.is_file()
    # A part that claims another model (copied in by hand, or left by a different job) is refused.
    table = pq.read_table(part)
    other = metadata_for(make_tiny_model(seed=1, formats=("proximity",)), "proximity")
    pq.write_table(table.replace_schema_metadata(other.schema_metadata()), part)
    with pytest.raises(ValueError, match="another model or format.*fingerprint"):
        embed_file(model, papers, out, chunk_size=5, show_progress=False)
    assert not out.exists()
    # With the right part back, the job resumes and finishes.
    pq.write_table(table, part)
    report = embed_file(model, papers, out, chunk_size=5, show_progress=False)
    assert report.resumed_chunks == 1 and read_metadata(out) == metadata_for(model, "proximity")
