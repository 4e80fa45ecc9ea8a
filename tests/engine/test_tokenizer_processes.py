"""The tokeniser processes: they start from a file that is removed once they run, and die with the job."""

import glob
import signal
import subprocess
import sys
import time

from conftest import minilm_tokenizer


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_start_from_a_removed_file_and_end_when_the_job_is_killed(tmp_path):
    spec = tmp_path / "tokenizer.json"
    spec.write_text(minilm_tokenizer().backend_tokenizer.to_str())
    script = (
        "import time, pathlib\n"
        "from sciembed.engine.processes import TokenizerPool\n"
        "if __name__ == '__main__':\n"
        f"    pool = TokenizerPool(pathlib.Path({str(spec)!r}).read_text(), 64, 2)\n"
        "    while not pool.ready:\n"
        "        time.sleep(0.01)\n"
        "    ids = list(pool.encode_groups([(0, ['a test'])]))[0][1].tolist()\n"
        "    print(pool._spec_path, ' '.join(map(str, pool.executor._processes)), ids, sep='|', flush=True)\n"
        "    time.sleep(600)\n"
    )
    (tmp_path / "job.py").write_text(script)
    job = subprocess.Popen([sys.executable, str(tmp_path / "job.py")], stdout=subprocess.PIPE, text=True)
    path, pids, ids = job.stdout.readline().split("|")
    assert path not in glob.glob(path)  # every worker read it: removed
    assert ids.strip().startswith("[101,")  # [CLS] a test [SEP]
    workers = [int(p) for p in pids.split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    job.send_signal(signal.SIGKILL)
    job.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
