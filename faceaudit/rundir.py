"""The run directory of DESIGN.md: paths, atomic writes and the manifest.

Writes go to a temporary file in the same folder and are renamed into place, so a reader (or a
resumed run) never sees a half-written table that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from faceaudit.core.errors import BadInput
from faceaudit.core.hashing import sha256_bytes, sha256_file, sha256_json  # noqa: F401 (re-exported for run-directory users)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; run directories are shared artifacts (CI uploads, web servers).
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(root: str | os.PathLike) -> list[Path]:
    """Delete the temp files :func:`atomic_path` leaves when its process is killed mid-write (SIGKILL,
    power loss: no ``except`` runs). Call it only where no other process writes into ``root`` (an
    audit owns its run directory); returns what was removed."""
    removed = []
    for tmp in Path(root).rglob(".*.tmp"):
        if tmp.is_file():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a DataFrame as parquet, deterministically (no pandas index, no creation timestamp)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    # pandas metadata embeds nothing time-dependent, but drop it anyway: readers get plain columns
    # and two runs of the same protocol produce byte-identical files.
    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet table; a missing, truncated or non-parquet file is one line naming the file."""
    try:
        return pq.read_table(path).to_pandas()
    except FileNotFoundError:
        raise BadInput(f"{path}: missing") from None
    except (pa.ArrowException, OSError) as err:
        raise BadInput(f"{path}: not a readable parquet table ({type(err).__name__}: {err})") from None


class ManifestCorrupt(BadInput):
    """``manifest.json`` exists but is not a JSON object (truncated, hand-edited, garbage)."""


class RunDir:
    """Paths of one run directory (DESIGN.md 'Run directory')."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # tables and files of the contract
    @property
    def protocol(self) -> Path:
        return self.root / "protocol.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def faces(self) -> Path:
        return self.root / "faces.parquet"

    @property
    def images(self) -> Path:
        return self.root / "images"

    def embeddings(self, model: str) -> Path:
        return self.root / "embeddings" / f"{safe_name(model)}.parquet"

    @property
    def pairs(self) -> Path:
        return self.root / "pairs.parquet"

    def scores(self, model: str) -> Path:
        return self.root / "scores" / f"{safe_name(model)}.parquet"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def manipulation_check(self) -> Path:
        return self.root / "results" / "manipulation_check.parquet"

    def score_tables(self) -> list[Path]:
        return sorted((self.root / "scores").glob("*.parquet"))

    # manifest
    def read_manifest(self) -> dict:
        """The manifest as a dict; ``{"stages": {}}`` when there is none yet.

        Raises :class:`ManifestCorrupt` (one line) when the file exists but cannot be trusted.
        """
        if not self.manifest.exists():
            return {"stages": {}}
        try:
            m = json.loads(self.manifest.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestCorrupt(f"{self.manifest}: corrupt manifest ({type(err).__name__}: {err})") from None
        if not isinstance(m, dict) or not isinstance(m.get("stages", {}), dict):
            raise ManifestCorrupt(f"{self.manifest}: corrupt manifest (not a JSON object with a 'stages' mapping)")
        m.setdefault("stages", {})
        return m

    def set_aside_corrupt_manifest(self) -> Path:
        """Move a corrupt manifest to ``manifest.json.corrupt`` (kept for inspection) and start afresh:
        with no record, every stage re-checks its inputs and redoes its work, so the rebuilt manifest
        only vouches for outputs written again."""
        aside = self.root / "manifest.json.corrupt"
        os.replace(self.manifest, aside)
        return aside

    def update_manifest(self, **fields: Any) -> dict:
        m = self.read_manifest()
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                m[k].update(v)
            else:
                m[k] = v
        write_json(self.manifest, m)
        return m

    def stage_problem(self, stage: str, inputs_hash: str) -> str | None:
        """None when ``stage`` is up to date: it finished with the same inputs hash and every output
        it wrote still has the sha256 recorded then. Otherwise a short reason (for the log)."""
        st = self.read_manifest()["stages"].get(stage)
        if not st or st.get("status") != "done":
            return "not run yet"
        if st.get("inputs_hash") != inputs_hash:
            return "inputs changed"
        recorded = st.get("output_sha256")
        if not isinstance(recorded, dict) or set(recorded) != set(st.get("outputs", [])):
            return "outputs not recorded with their sha256"
        return self.first_mismatch(recorded.items(), "the manifest")

    def first_mismatch(self, expected: Iterable[tuple[str, str]], source: str) -> str | None:
        """The first file (path relative to the run) that is missing or whose sha256 is not the one
        ``source`` recorded, as a short reason; None when every file matches."""
        for rel, sha in expected:
            path = self.root / rel
            if not path.is_file():
                return f"{rel} is missing"
            if sha256_file(path) != sha:
                return f"{rel} changed or is damaged (sha256 differs from {source})"
        return None

    def stage_done(self, stage: str, inputs_hash: str) -> bool:
        return self.stage_problem(stage, inputs_hash) is None

    def mark_stage(self, stage: str, inputs_hash: str, outputs: list[str], seconds: float, **extra: Any) -> None:
        m = self.read_manifest()
        m["stages"][stage] = {
            "status": "done",
            "inputs_hash": inputs_hash,
            "outputs": outputs,
            "output_sha256": {rel: sha256_file(self.root / rel) for rel in outputs},
            "seconds": round(seconds, 3),
            **extra,
        }
        write_json(self.manifest, m)

    def recorded_outputs_problem(self, stage: str) -> str | None:
        """For a stage another stage reads from: None when its recorded outputs still have their
        sha256 (or when the manifest holds no record of it: tables written by other tools are read as
        they are); otherwise which output no longer matches."""
        st = self.read_manifest()["stages"].get(stage)
        if not st or not isinstance(st.get("output_sha256"), dict):
            return None
        problem = self.first_mismatch(st["output_sha256"].items(), "the manifest")
        if problem is None:
            return None
        rel = problem.split(" ", 1)[0]
        return f"{self.root / rel}: missing, damaged or changed since the `{stage.split(':')[0]}` stage wrote it"

    def drop_stage(self, stage: str) -> None:
        """Forget a stage's record (before it re-runs, so a crash mid-stage leaves it 'not run')."""
        m = self.read_manifest()
        if m["stages"].pop(stage, None) is not None:
            write_json(self.manifest, m)

    def recorded_output(self, stage: str, rel: str) -> str | None:
        """The sha256 the manifest recorded for output ``rel`` of ``stage`` (None when not recorded)."""
        st = self.read_manifest()["stages"].get(stage) or {}
        return (st.get("output_sha256") or {}).get(rel)


def safe_name(name: str) -> str:
    """A model name as a file name (plugin specs contain ':' and '.')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class Timer:
    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0
