import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file
from typer.testing import CliRunner

from sciembed.cli import app
from sciembed.data import load_papers
from sciembed.embed import read_embeddings

runner = CliRunner()


def embed(args):
    result = runner.invoke(app, ["embed", *map(str, args)])
    return result


def test_info_prints_formats_dimension_pooling_and_sha(tiny_model_folder):
    result = runner.invoke(app, ["info", str(tiny_model_folder)])
    assert result.exit_code == 0, result.output
    assert "dimension:  32" in result.output
    assert "pooling:    cls" in result.output
    assert "proximity, classification, regression, adhoc_query" in result.output
    sha = json.loads((tiny_model_folder / "sciembed.json").read_text())["base_sha256"]
    assert sha in result.output


@pytest.mark.parametrize(
    ("relative", "id_field", "limit", "first_id"),
    [
        ("scirepeval-sample/fos_small.json", "corpus_id", None, "121676082"),
        ("acl/scisummnet-papers.jsonl", "acl_id", 120, "A00-1031"),
        ("arxiv/papers-2025-2026.jsonl.gz", "id", 150, "2503.11731"),
    ],
)
def test_embed_real_shared_files(tmp_path, tiny_model_folder, relative, id_field, limit, first_id):
    src = shared_file(relative)
    out = tmp_path / "out.parquet"
    args = [src, out, "--model", tiny_model_folder, "--id-field", id_field, "--format", "[CLF]"]
    if limit:
        args += ["--limit", limit]
    result = embed(args)
    assert result.exit_code == 0, result.output
    ids, vectors = read_embeddings(out)
    assert ids[0] == first_id and vectors.shape == (limit or 205, 32)
    assert f"wrote {len(ids)} embeddings" in result.output


def test_embed_parquet_input(tmp_path, tiny_model_folder):
    papers = load_papers(shared_file("scirepeval-sample/mesh_small.json"))
    src = tmp_path / "mesh.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"corpus_id": p.paper_id, "title": p.title, "abstract": p.abstract} for p in papers]), src
    )
    out = tmp_path / "out.parquet"
    result = embed([src, out, "--model", tiny_model_folder])
    assert result.exit_code == 0, result.output
    ids, _ = read_embeddings(out)
    assert ids == [p.paper_id for p in papers]


def test_embed_bad_input_names_the_record_and_skip_invalid_reports(tmp_path, tiny_model_folder):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"paper_id": "a", "title": "fine"}\n{"paper_id": "b"}\n{"paper_id": "c", "title": "ok"}\n')
    result = embed([src, tmp_path / "o.parquet", "--model", tiny_model_folder])
    assert result.exit_code == 2
    assert f"{src}:2" in result.output and "neither title nor abstract" in result.output
    result = embed([src, tmp_path / "o.parquet", "--model", tiny_model_folder, "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "1 invalid records skipped" in result.output and f"{src}:2" in result.output
    assert read_embeddings(tmp_path / "o.parquet")[0] == ["a", "c"]


def test_unknown_format_is_a_clear_error(tmp_path, tiny_model_folder):
    src = tmp_path / "p.jsonl"
    src.write_text('{"paper_id": "a", "title": "fine"}\n')
    result = embed([src, tmp_path / "o.parquet", "--model", tiny_model_folder, "--format", "summary"])
    assert result.exit_code == 2 and "unknown task format 'summary'" in result.output


def test_demo_shows_neighbours_with_titles(tiny_model_folder):
    result = runner.invoke(app, ["demo", "--model", str(tiny_model_folder), "--limit", "60"])
    assert result.exit_code == 0, result.output
    assert "Embedded 60 papers" in result.output
    assert result.output.count("\n   ") >= 9  # three queries x three neighbours
