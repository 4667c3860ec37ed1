"""The ``faceaudit`` command line: thin commands over :mod:`faceaudit.api`.

Exit codes (DESIGN.md): 0 ok/pass, 1 gate failed (nothing else exits 1), 2 bad input or usage,
3 inconclusive, 4 internal error. Every error a user can fix (bad files, paths, encodings,
permissions, a full disk) is one line on stderr: ``error: <where>: <what>``. An internal error prints
one line naming a log file that holds the traceback (``--debug`` prints the traceback instead).

Output meant for scripts never wraps: YAML, tables and summaries are written as plain text, and
``--json`` is offered where a result is printed.

The app and its shared error handling are in :mod:`faceaudit.cli.app`; the commands, by job, in
``stages`` (audit and the single stages), ``results`` (gate, compare), ``catalog`` (models,
generators), ``directions``, ``annotate`` and ``importing``. Each command parses its options, calls
one :mod:`faceaudit.api` function and prints; besides its own modules, the CLI imports only
``faceaudit.api`` and ``faceaudit.core``.
"""

from faceaudit.cli.app import app

# Importing the command modules registers their commands on ``app``, in this order (the order of
# ``faceaudit --help``).
from faceaudit.cli import stages, results, catalog, directions, annotate, importing  # noqa: F401  isort: skip

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry
    app()
