"""The job's reader: the same chunks on a thread and in a process, input errors kept for the end."""

import gzip
import json
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sciembed.data import InvalidRecordError
from sciembed.data.errors import InputFileError
from sciembed.embed.reading import ChunkReader, ChunkSource


def _write(path, n, bad_line=None, duplicate_of=None):
    """``n`` lines; ``bad_line`` is not JSON; line 7 repeats paper ``duplicate_of`` exactly."""
    with open(path, "w") as handle:
        for i in range(n):
            k = duplicate_of if i + 1 == 7 and duplicate_of is not None else i
            record = {"paper_id": f"id{k}", "title": f"Paper {k}", "abstract": f"a  b\n{k}"}
            handle.write("{not json\n" if i + 1 == bad_line else json.dumps(record) + "\n")
    return path


def _read(source, in_process):
    with ChunkReader(source, in_process=in_process) as reader:
        chunks = list(reader)
    return chunks, reader


@pytest.mark.parametrize(("skip_invalid", "parse_workers"), [(False, 0), (True, 0), (False, 2), (True, 2)])
def test_a_process_reads_the_same_chunks_and_report_as_a_thread(tmp_path, skip_invalid, parse_workers):
    path = _write(tmp_path / "p.jsonl", 23, bad_line=15 if skip_invalid else None, duplicate_of=2)
    source = ChunkSource(path, 5, "[SEP]", ("title", "abstract"), skip_invalid=skip_invalid, limit=20)
    here, by_thread = _read(source, False)
    # Blocks of 3 lines: many in flight, finishing out of order.
    there, by_process = _read(replace(source, parse_workers=parse_workers, parse_block_lines=3), True)
    assert here == there and by_thread.error is None and by_process.error is None
    assert by_thread.report == by_process.report and by_process.report.duplicates == 1
    ids = [i for chunk_ids, _ in there for i in chunk_ids]
    assert len(ids) == 20 and "id6" not in ids  # line 7 repeats paper 2 exactly: dropped
    assert there[0][1][0] == "Paper 0 [SEP] a b 0"  # the model's text, white space normalised
    assert by_process.report.skipped == (1 if skip_invalid else 0)


@pytest.mark.parametrize(("in_process", "parse_workers"), [(False, 0), (True, 0), (True, 2)])
def test_an_input_error_ends_the_chunks_and_is_kept_whole(tmp_path, in_process, parse_workers):
    path = _write(tmp_path / "p.jsonl", 30, bad_line=17)
    chunks, reader = _read(ChunkSource(path, 5, "[SEP]", ("title",), parse_workers=parse_workers), in_process)
    assert [len(ids) for ids, _ in chunks] == [5, 5, 5]  # every chunk before the bad line
    assert (
        isinstance(reader.error, InvalidRecordError)
        and str(reader.error) == f"{path}:17: invalid JSON (Expecting property name enclosed in double quotes)"
    )
    truncated = tmp_path / "t.jsonl.gz"
    truncated.write_bytes(b"\x1f\x8b\x08\x00garbage")
    _, reader = _read(ChunkSource(truncated, 5, "[SEP]", ("title",), parse_workers=parse_workers), in_process)
    assert isinstance(reader.error, InputFileError) and "t.jsonl.gz" in str(reader.error)
    # Damage after 13 whole lines: every chunk before it, then the error that names the line.
    whole = gzip.compress(path.read_bytes().replace(b"{not json", b'{"paper_id": "x", "title": "y"}'))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    chunks, reader = _read(ChunkSource(cut, 5, "[SEP]", ("title",), parse_workers=parse_workers), in_process)
    assert isinstance(reader.error, InputFileError) and "truncated or corrupt gzip data" in str(reader.error)
    lines_before = reader.error.line - 1
    assert [len(ids) for ids, _ in chunks] == [5] * (lines_before // 5)


def test_input_errors_cross_a_process_boundary_intact():
    error = InputFileError("f.jsonl", 3, "truncated", record_id="p1")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is InputFileError and str(again) == str(error) and again.line == 3 and again.record_id == "p1"


def test_a_reading_process_that_dies_is_an_error_naming_the_file(tmp_path):
    path = _write(tmp_path / "p.jsonl", 2000)  # far more than it can send ahead: it cannot finish first
    reader = ChunkReader(ChunkSource(path, 5, "[SEP]", ("title",)), in_process=True, poll_s=0.05)
    chunks = iter(reader)
    next(chunks)
    reader._process.kill()
    reader._process.join()
    with pytest.raises(RuntimeError, match=r"p\.jsonl: the process reading it ended unexpectedly"):
        for _ in range(100):  # what it sent before it died may still arrive
            next(chunks)
    reader.close()


def test_a_killed_job_takes_its_reading_process_with_it(tmp_path):
    """SIGKILL of the job (no clean-up runs): the reading process, blocked on a full queue, ends too."""
    path = _write(tmp_path / "p.jsonl", 400)
    script = (
        "import sys, time\n"
        "from sciembed.embed.reading import ChunkReader, ChunkSource\n"
        "if __name__ == '__main__':\n"
        f"    reader = ChunkReader(ChunkSource({str(path)!r}, 5, '[SEP]', ('title',)), in_process=True)\n"
        "    next(iter(reader))\n"
        "    print(reader._process.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    (tmp_path / "job.py").write_text(script)
    job = subprocess.Popen([sys.executable, str(tmp_path / "job.py")], stdout=subprocess.PIPE, text=True)
    child = int(job.stdout.readline())
    job.send_signal(signal.SIGKILL)
    job.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"  # a zombie has ended (its parent is gone too)
    except FileNotFoundError:
        return False


def test_the_tokeniser_processes_start_before_the_first_chunk_where_it_may_use_them(tmp_path):
    """A job read on a thread (below 20,000 papers) still starts the engine's tokeniser processes
    beside the model's move and probe when its first chunk can be large enough to use them."""
    from sciembed.embed.job import _tokenizes_in_processes
    from sciembed.engine.run import AUTO_WORKERS_MIN_DOCS

    def papers(n: int) -> Path:
        path = tmp_path / f"p{n}.jsonl"
        path.write_text("".join(json.dumps({"paper_id": str(i), "title": f"t {i}"}) + "\n" for i in range(n)))
        return path

    enough, few = papers(AUTO_WORKERS_MIN_DOCS), papers(AUTO_WORKERS_MIN_DOCS - 1)
    assert _tokenizes_in_processes(False, enough, None)
    assert not _tokenizes_in_processes(False, few, None)
    assert not _tokenizes_in_processes(False, enough, AUTO_WORKERS_MIN_DOCS - 1)  # --limit below
    assert _tokenizes_in_processes(True, few, None)  # read in a process: a large job
