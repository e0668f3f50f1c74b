"""The ``kairos`` command line: one module per command group, ``main`` runs one command.

``python -m app.cli`` is the same command (``__main__``): worker processes started by the
demo and the tests run it that way.
"""

from app.cli.common import EXIT_FAILURE, EXIT_USAGE
from app.cli.main import main, parser

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "main", "parser"]
