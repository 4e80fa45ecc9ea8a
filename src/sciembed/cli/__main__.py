"""``python -m sciembed.cli``: the same as the ``sciembed`` command."""

from . import main

main()
