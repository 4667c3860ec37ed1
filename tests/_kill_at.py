"""Run the faceaudit CLI (``python tests/_kill_at.py audit ...``) and SIGKILL it at an exact,
load-independent point: just before or just after the N-th atomic rename (``os.replace``, the last
step of every write in a run directory and in the embedding cache) whose target matches a pattern.

Every state a crash can leave on disk lies between two renames: the files renamed into place up to
rename k, plus at most one temp file of write k+1 (complete or not; resuming deletes it either way).
Killing just after rename k or just before rename k+1 therefore reaches every such state, and the same
command kills at the same point on an idle machine and on a loaded one.

Environment: ``FACEAUDIT_TEST_KILL`` = ``REGEX;N;WHEN``: kill at the ``N``-th (from 1, counted from this
process's start) rename whose target path matches ``REGEX`` (``re.search``), ``WHEN`` ``before`` or
``after`` that rename. Unset: nothing is killed.

When this process leads its own process group (started with ``start_new_session=True``) the whole
group is killed, so measuring workers die too, as in a machine crash; otherwise only this process.
"""

from __future__ import annotations

import os
import re
import signal
import sys


def install(spec: str) -> None:
    """Patch ``os.replace`` in this process to die at the point ``spec`` names (see the module docstring)."""
    pattern, n, when = spec.split(";")
    target, n = re.compile(pattern), int(n)
    if n < 1 or when not in ("before", "after"):
        raise SystemExit(f"FACEAUDIT_TEST_KILL: bad spec {spec!r}")
    real_replace = os.replace
    seen = 0

    def die() -> None:
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *args, **kwargs):
        nonlocal seen
        hit = target.search(os.fspath(dst)) is not None
        if hit:
            seen += 1
            if seen == n and when == "before":
                die()
        result = real_replace(src, dst, *args, **kwargs)
        if hit and seen == n and when == "after":
            die()
        return result

    os.replace = replace


if __name__ == "__main__":
    if os.environ.get("FACEAUDIT_TEST_KILL"):
        install(os.environ["FACEAUDIT_TEST_KILL"])
    from faceaudit.cli import app

    sys.argv = ["faceaudit", *sys.argv[1:]]
    app()
