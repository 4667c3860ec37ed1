"""Shared fixtures. The expensive one is ``quick_run``: the real quick protocol (DCGAN faces through
dlib and SFace), run once per test session and shared by the end-to-end, report and notebook tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
