"""Shared fixtures. The expensive one is ``quick_run``: the real quick protocol (DCGAN faces through
dlib and SFace), run once per test session and shared by the end-to-end, report and notebook tests.

The hooks below make a skipped check fail (tests/_promised.py says why and which skips remain).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _promised import HOW_TO_GET, NotApplicable

ROOT = Path(__file__).resolve().parents[1]

SKIP_IS_FAILURE = (
    "`make test` promises this check; a skip would let CI pass without it. Get what it needs and run it again:\n"
    + "".join(f"  {what}: {how}\n" for what, how in HOW_TO_GET.items())
    + "Only a check that cannot apply on this machine may skip: tests/_promised.py:not_applicable()."
)


def _skip_reason(longrepr) -> str:
    # a skip's longrepr is (path, line, "Skipped: reason")
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test in tests/ that skips (pytest.skip, skipif, importorskip) fails instead, unless it called
    ``not_applicable``."""
    report = yield
    if not report.skipped or hasattr(report, "wasxfail") or call.excinfo is None:
        return report
    if call.excinfo.errisinstance(NotApplicable):
        return report
    report.outcome = "failed"
    report.longrepr = f"skipped, which make test does not allow: {_skip_reason(report.longrepr)}\n{SKIP_IS_FAILURE}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A whole module that skips at import (module-level importorskip or skip) is a collection error."""
    report = yield
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid} skipped at import, which make test does not allow: " \
                          f"{_skip_reason(report.longrepr)}\n{SKIP_IS_FAILURE}"
    return report


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A private embedding cache, so tests never read results cached by an earlier session."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("FACEAUDIT_CACHE")
    os.environ["FACEAUDIT_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("FACEAUDIT_CACHE", None)
    else:
        os.environ["FACEAUDIT_CACHE"] = old


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, session_cache):
    from faceaudit import pipeline

    out = tmp_path_factory.mktemp("runs") / "quick"
    ctx = pipeline.audit(ROOT / "protocols" / "quick.yaml", out, progress=False)
    return ctx.run.root


@pytest.fixture(scope="session")
def synthetic_run_template(tmp_path_factory):
    """Built once per session; tests get copies (``synthetic_run``) so they may modify them."""
    from _synthetic_run import build_synthetic_run

    return build_synthetic_run(tmp_path_factory.mktemp("synthetic-template") / "run")


@pytest.fixture
def synthetic_run(tmp_path, synthetic_run_template):
    """A small synthetic run directory with every DESIGN.md table (tests/_synthetic_run.py); no models needed."""
    import shutil

    return Path(shutil.copytree(synthetic_run_template, tmp_path / "synthetic"))
