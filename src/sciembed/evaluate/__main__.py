"""``python -m sciembed.evaluate ...``: the same as ``sciembed evaluate ...`` (one command line)."""

import sys

from ..cli import app

app(["evaluate", *sys.argv[1:]], prog_name="python -m sciembed.evaluate")
