"""``python -m modelgates`` runs the ``modelgates`` command."""

from modelgates.cli import main

main()
