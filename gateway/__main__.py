"""``python -m gateway``: same as the ``risgate`` command."""

from gateway.cli import main

main()
