"""``python -m sciembed``: the same as the ``sciembed`` command."""

from .cli import main

main()
