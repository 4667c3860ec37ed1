"""Errors with exit codes (DESIGN.md: 0 ok/pass, 1 gate failed, 2 bad input or usage, 3 inconclusive).

Every user-facing failure raises :class:`BadInput` with a one-line message that names *what* is wrong
and *where* (file, key, row). The CLI prints that line and exits with ``exit_code``.
"""

from __future__ import annotations


class FaceAuditError(Exception):
    """Base class. ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str):
        # One line, always: multi-line messages break CI log greps and JUnit output.
        super().__init__(" ".join(str(message).split()))


class BadInput(FaceAuditError):
    """Malformed protocol, unreadable image, missing weights, NaN from a model, ... (exit 2)."""

    exit_code = 2


class ModelUnavailable(BadInput):
    """A model's weights or runtime cannot be loaded here (offline, missing file, missing package)."""


class GateFailed(FaceAuditError):
    exit_code = 1


class Inconclusive(FaceAuditError):
    exit_code = 3
