"""The one progress bar: shown or silent, iterable or counted, resumable; no other bar in the library."""

from __future__ import annotations

import io
import re

from conftest import REPO_ROOT

from sciembed.data.progress import progress_bar


def test_a_hidden_bar_prints_nothing_and_still_iterates():
    out = io.StringIO()
    bar = progress_bar(iterable=range(3), show=False, file=out)
    assert list(bar) == [0, 1, 2]
    bar.update(5)
    bar.set_postfix(loss="1.0")
    bar.close()
    assert out.getvalue() == ""


def test_a_shown_bar_starts_at_the_work_already_done():
    out = io.StringIO()
    bar = progress_bar(10, True, desc="training", unit="step", initial=4, file=out)
    bar.update(2)
    bar.close()
    text = out.getvalue()
    assert "training" in text and "6/10" in text


def test_no_module_but_data_progress_makes_its_own_bar():
    source = REPO_ROOT / "src" / "sciembed"
    own = re.compile(r"^\s*(from tqdm|import tqdm|from rich\.progress|import rich\.progress)", re.M)
    offenders = [
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if path != source / "data" / "progress.py" and own.search(path.read_text())
    ]
    assert offenders == []
