"""Run-directory set-up: a new run (``init_run``), an existing one (``open_run``), leftovers of a
killed write, a corrupt manifest set aside, and the checks that a stage's inputs are verified."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Optional

import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.pipeline.console import log
from faceaudit.pipeline.models import library_versions
from faceaudit.protocol import Protocol
from faceaudit.run import load_run
from faceaudit.rundir import ManifestCorrupt, RunDir, sha256_json, write_text


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: --out exists and is not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{out}: cannot create the run directory: {parent} is a file")
            break


def _manifest_or_rebuild(run: RunDir) -> None:
    """A corrupt manifest cannot vouch for any output: set it aside (one line) and let every stage
    re-check and redo its work, which rebuilds the manifest from outputs written again."""
    try:
        run.read_manifest()
    except ManifestCorrupt as err:
        aside = run.set_aside_corrupt_manifest()
        log(f"{err}; moved to {aside.name} and rebuilding: every stage re-checks its inputs and redoes its work")


def _remove_killed_writes(run: RunDir) -> None:
    """A run killed mid-write (SIGKILL) leaves its temp file; the output it was writing was never
    renamed into place, so the stage is redone and the temp file is only clutter."""
    from faceaudit.rundir import remove_stale_temp_files

    removed = remove_stale_temp_files(run.root)
    if removed:
        log(f"removed {len(removed)} temp file(s) left by an interrupted write")


def init_run(protocol: Protocol, out: str | Path) -> RunDir:
    """Create/refresh RUN/protocol.yaml (resolved) and the manifest's static fields."""
    out = Path(out)
    _check_out_dir(out)
    run = RunDir(out)
    run.root.mkdir(parents=True, exist_ok=True)
    _remove_killed_writes(run)
    _manifest_or_rebuild(run)
    text = protocol.to_yaml()
    if not run.protocol.exists() or run.protocol.read_bytes() != text.encode("utf-8"):
        write_text(run.protocol, text)
    run.update_manifest(
        protocol_name=protocol.name,
        protocol_hash=sha256_json(protocol.resolved_dict()),
        seed=protocol.seed,
        versions=library_versions(),
        platform={"machine": platform.machine(), "system": platform.system(), "python": sys.version.split()[0]},
    )
    return run


def open_run(out: str | Path) -> tuple[RunDir, Protocol]:
    """The run directory and its resolved protocol, for a single stage (:func:`faceaudit.run.load_run`:
    schema only, since analyze and report need no model code and embed and score load, and so
    check, their models; a corrupt manifest is refused)."""
    run = load_run(out)
    return run.dir, run.protocol


def require_verified(run: RunDir, stages: list[str]) -> None:
    """Refuse to build on upstream outputs that no longer match what their stage recorded."""
    for stage in stages:
        problem = run.recorded_outputs_problem(stage)
        if problem is not None:
            raise BadInput(f"{problem}; re-run `faceaudit audit {run.protocol} --out {run.root}` (or that stage)")


def require_table(path: Path, stage: str) -> None:
    if not path.exists():
        raise BadInput(f"{path}: missing; run the `{stage}` stage first")


def verify_images(run: RunDir) -> Optional[str]:
    """Every image the faces table lists exists and has its recorded sha256 (None when all do)."""
    try:
        faces = pd.read_parquet(run.faces, columns=["path", "sha256"])
    except Exception:  # noqa: BLE001 - the stage's own sha256 check has already vouched for the file
        return "faces.parquet cannot be read"
    return run.first_mismatch(zip(faces["path"], faces["sha256"]), "faces.parquet")
