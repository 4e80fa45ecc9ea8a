"""``python -m sciembed.train base|tokenize|adapters|... [options]``: the same as ``sciembed train ...``.

One command line: this only hands its arguments to the Typer CLI (``torchrun -m sciembed.train base``
works the same way).
"""

import sys

from ..cli import app

app(["train", *sys.argv[1:]], prog_name="python -m sciembed.train")
