import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import RecordingEncoder

from sciembed.data import InvalidRecordError
from sciembed.embed import embed_file, read_embeddings
from sciembed.embed.job import JOB_PHASES
from sciembed.engine import EncodeOptions
from sciembed.model import load_model


class SimulatedCrash(Exception):
    pass


def crash_at_call(model, src, out, call):
    """``embed_file`` of ``src`` in chunks of 10, killed at the ``call``-th encode of a chunk."""
    with pytest.raises(SimulatedCrash):
        embed_file(RecordingEncoder(model, fail_on=call, error=SimulatedCrash("killed")), src, out,
                   chunk_size=10, show_progress=False)  # fmt: skip


def kill_after_two_parts(cmd, env, parts):
    """Run ``cmd``, SIGKILL it once two parts are written; returns the parts finished then."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(list(parts.glob("part-*.parquet")))


def write_papers(path, n, long=False, bad_line=None):
    with open(path, "w") as handle:
        for i in range(n):
            if i + 1 == bad_line:
                handle.write("{not json\n")
                continue
            abstract = f"word{i} " * (200 if long else (i % 7 + 1))
            handle.write(json.dumps({"paper_id": f"id{i}", "title": f"Paper number {i}", "abstract": abstract}) + "\n")
    return path


def test_writes_parquet_with_ids_and_fixed_size_float32_vectors(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 25)
    out = tmp_path / "e.parquet"
    report = embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    assert report.rows == 25 and report.chunks == 3
    assert tuple(report.seconds) == JOB_PHASES and all(s >= 0 for s in report.seconds.values())
    assert report.to_json()["seconds"] == report.seconds
    table = pq.read_table(out)
    assert str(table.schema.field("paper_id").type) == "string"
    assert str(table.schema.field("embedding").type) == "fixed_size_list<element: float>[32]"
    ids, vectors = read_embeddings(out)
    assert ids == [f"id{i}" for i in range(25)]
    expected = tiny_model.encode([json.loads(line) for line in open(src)])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert not (tmp_path / "e.parquet.parts").exists()


def test_interrupted_job_resumes_without_recomputing_and_matches(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 50)
    clean = tmp_path / "clean.parquet"
    embed_file(tiny_model, src, clean, chunk_size=10, show_progress=False)

    out = tmp_path / "out.parquet"
    crash_at_call(tiny_model, src, out, 3)
    assert not out.exists() and len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 2
    counting = RecordingEncoder(tiny_model)
    report = embed_file(counting, src, out, chunk_size=10, show_progress=False)
    assert report.resumed_chunks == 2 and len(counting.calls) == 3  # only the 3 unfinished chunks are computed
    assert pq.read_table(out).equals(pq.read_table(clean))


def test_resume_with_other_settings_is_refused(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 30)
    out = tmp_path / "out.parquet"
    parts = tmp_path / "out.parquet.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"chunk_size": 999}))
    (parts / "part-00000.parquet").write_bytes(b"finished under other settings")
    with pytest.raises(ValueError, match="unfinished job with other settings"):
        embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    (parts / "part-00000.parquet").unlink()  # nothing finished: the new settings simply start afresh
    assert embed_file(tiny_model, src, out, chunk_size=10, show_progress=False).rows == 30


def test_killed_process_resumes_to_identical_file(tmp_path, tiny_model_folder):
    """A real SIGKILL in the middle of `sciembed embed`, then the same command again."""
    src = write_papers(tmp_path / "p.jsonl", 300, long=True)
    cmd = [
        sys.executable,
        "-m",
        "sciembed.cli",
        "embed",
        str(src),
        str(tmp_path / "out.parquet"),
        "--model",
        str(tiny_model_folder),
        "--chunk-size",
        "20",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = kill_after_two_parts(cmd, env, tmp_path / "out.parquet.parts")
    assert 2 <= finished < 14, "the kill should land in the middle of the job"
    assert not (tmp_path / "out.parquet").exists()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert f"resumed: {finished}" in result.stdout or f"resumed: {finished + 1}" in result.stdout
    clean = tmp_path / "clean.parquet"
    embed_file(
        load_model(tiny_model_folder), src, clean, chunk_size=20, batch_size=4, device="cpu", show_progress=False
    )
    a, b = pq.read_table(tmp_path / "out.parquet"), pq.read_table(clean)
    assert a.num_rows == 300 and a.equals(b)
    assert (tmp_path / "out.parquet").read_bytes() == clean.read_bytes()
    assert not list(tmp_path.glob(".out.parquet.*.tmp"))  # the killed run's output in progress is gone
    assert a.column("paper_id").to_pylist() == [f"id{i}" for i in range(300)]


def test_resume_with_fp8_switched_is_refused(tmp_path, tiny_model):
    """FP8 products move vectors beyond rounding: a job begun without them must not finish with them."""
    from sciembed.engine import EncodeOptions

    src = write_papers(tmp_path / "p.jsonl", 30)
    out = tmp_path / "out.parquet"
    crash_at_call(tiny_model, src, out, 2)
    manifest = json.loads((tmp_path / "out.parquet.parts" / "manifest.json").read_text())
    assert "fp8" not in manifest  # off: not recorded, so jobs written before stay resumable
    with pytest.raises(ValueError, match="unfinished job with other settings"):
        embed_file(tiny_model, src, out, chunk_size=10, show_progress=False, options=EncodeOptions(fp8=True))
    assert embed_file(tiny_model, src, out, chunk_size=10, show_progress=False).resumed_chunks == 1


class OtherRounding:
    """The same model (fingerprint, settings) computing vectors one float32 step away: what another
    sciembed version, torch or GPU does to a resumed job."""

    def __init__(self, inner):
        self.inner = inner

    def encode(self, papers, *args, **kwargs):
        vectors = np.asarray(self.inner.encode(papers, *args, **kwargs), dtype=np.float32)
        return np.nextafter(vectors, np.float32(2.0))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_resume_by_code_that_rounds_otherwise_is_refused(tmp_path, tiny_model):
    """Parts written by one version must not be finished by another whose vectors differ by rounding."""
    from sciembed.embed.numerics import vectors_digest

    src = write_papers(tmp_path / "p.jsonl", 30)
    out = tmp_path / "out.parquet"
    crash_at_call(tiny_model, src, out, 2)
    manifest = json.loads((tmp_path / "out.parquet.parts" / "manifest.json").read_text())
    assert manifest["vectors"] == vectors_digest(tiny_model, "proximity", None)
    with pytest.raises(ValueError, match=r"differs in: \['vectors'\]; this sciembed, torch or device computes other"):
        embed_file(OtherRounding(tiny_model), src, out, chunk_size=10, show_progress=False)
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 1  # nothing was touched
    assert embed_file(tiny_model, src, out, chunk_size=10, show_progress=False).resumed_chunks == 1


def test_vectors_digest_follows_the_vectors_and_nothing_else(tiny_adapter_model):
    tiny_model = tiny_adapter_model
    from sciembed.embed.numerics import vectors_digest

    digest = vectors_digest(tiny_model, "proximity", None)
    assert digest == vectors_digest(tiny_model, "proximity", None)
    assert digest != vectors_digest(tiny_model, "classification", None)  # another adapter, other vectors
    assert digest != vectors_digest(OtherRounding(tiny_model), "proximity", None)
    assert len(digest) == 16 and int(digest, 16) >= 0


def test_uncompile_packed_restores_the_eager_forward(tiny_model):
    tiny_model.compile_packed(backend="eager")
    assert tiny_model.compiled
    assert tiny_model.uncompile_packed() is tiny_model and not tiny_model.compiled


def test_a_failed_encode_keeps_the_chunks_before_it_and_nothing_after(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 60)
    out = tmp_path / "out.parquet"
    crash_at_call(tiny_model, src, out, 3)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet"]  # chunk 1's write was in flight
    report = embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    assert report.resumed_chunks == 2 and report.rows == 60


def test_a_bad_record_still_writes_every_chunk_read_before_it(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 60, bad_line=45)
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidRecordError, match=r"p\.jsonl:45: invalid JSON"):
        embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]  # lines 1-40; the bad one is in chunk 4


STREAMED = {"read_process": True, "options": EncodeOptions(pipeline=True)}


def test_the_stream_and_the_reading_process_write_the_file_of_one_call_per_chunk(tmp_path, tiny_adapter_model):
    src = write_papers(tmp_path / "p.jsonl", 45)
    per_chunk, streamed = tmp_path / "a.parquet", tmp_path / "b.parquet"
    embed_file(tiny_adapter_model, src, per_chunk, format="classification", chunk_size=10, show_progress=False,
               read_process=False)  # fmt: skip
    report = embed_file(tiny_adapter_model, src, streamed, format="classification", chunk_size=10,
                        show_progress=False, **STREAMED)  # fmt: skip
    assert report.rows == 45 and report.read.papers == 45
    assert pq.read_table(streamed).equals(pq.read_table(per_chunk))


def test_a_streamed_job_killed_mid_way_resumes_to_the_same_file(tmp_path, tiny_model_folder):
    """SIGKILL of a job that streams its chunks (pipeline on) and reads in a process of its own."""
    src = write_papers(tmp_path / "p.jsonl", 300, long=True)
    out, clean = tmp_path / "out.parquet", tmp_path / "clean.parquet"
    settings = "chunk_size=20, batch_size=4, device='cpu', show_progress=False"
    streamed = f"read_process=True, options=EncodeOptions(pipeline=True), {settings}"
    script = (
        "from sciembed.embed import embed_file\n"
        "from sciembed.engine import EncodeOptions\n"
        "from sciembed.model import load_model\n"
        "if __name__ == '__main__':\n"
        f"    embed_file(load_model({str(tiny_model_folder)!r}), {str(src)!r}, {str(out)!r}, {streamed})\n"
    )
    (tmp_path / "job.py").write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = kill_after_two_parts([sys.executable, str(tmp_path / "job.py")], env, tmp_path / "out.parquet.parts")
    assert 2 <= finished < 15 and not out.exists(), "the kill should land in the middle of the job"
    model = load_model(tiny_model_folder)
    report = embed_file(model, src, out, read_process=True, options=EncodeOptions(pipeline=True), chunk_size=20,
                        batch_size=4, device="cpu", show_progress=False)  # fmt: skip
    assert report.resumed_chunks >= finished - 1 and report.rows == 300  # the part in flight may be done
    embed_file(model, src, clean, chunk_size=20, batch_size=4, device="cpu", show_progress=False)
    assert pq.read_table(out).equals(pq.read_table(clean)) and out.read_bytes() == clean.read_bytes()
    assert not list(tmp_path.glob(".out.parquet.*.tmp"))


def test_a_bad_record_read_by_the_reading_process_keeps_every_chunk_before_it(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 60, bad_line=45)
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidRecordError, match=r"p\.jsonl:45: invalid JSON"):
        embed_file(tiny_model, src, out, chunk_size=10, show_progress=False, **STREAMED)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]


@pytest.mark.parametrize("read_process", [False, True])
def test_the_fields_of_the_options_make_the_texts(tmp_path, tiny_model, read_process):
    src = write_papers(tmp_path / "p.jsonl", 12)
    out = tmp_path / "out.parquet"
    embed_file(tiny_model, src, out, chunk_size=5, show_progress=False, read_process=read_process,
               options=EncodeOptions(fields=("abstract",)))  # fmt: skip
    _, vectors = read_embeddings(out)
    papers = [json.loads(line) for line in open(src)]
    np.testing.assert_allclose(vectors, tiny_model.encode(papers, fields=["abstract"]), atol=1e-6)
    assert not np.allclose(vectors, tiny_model.encode(papers), atol=1e-3)
