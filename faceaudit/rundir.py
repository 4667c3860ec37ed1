"""The run directory of DESIGN.md: paths, atomic writes and the manifest.

Writes go to a temporary file in the same folder and are renamed into place, so a reader (or a
resumed run) never sees a half-written table that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


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
    return pq.read_table(path).to_pandas()


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
        if self.manifest.exists():
            return json.loads(self.manifest.read_text())
        return {"stages": {}}

    def update_manifest(self, **fields: Any) -> dict:
        m = self.read_manifest()
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                m[k].update(v)
            else:
                m[k] = v
        write_json(self.manifest, m)
        return m

    def stage_done(self, stage: str, inputs_hash: str) -> bool:
        """True when ``stage`` finished with the same input hash and its outputs still exist."""
        st = self.read_manifest().get("stages", {}).get(stage)
        if not st or st.get("status") != "done" or st.get("inputs_hash") != inputs_hash:
            return False
        return all((self.root / p).exists() for p in st.get("outputs", []))

    def mark_stage(self, stage: str, inputs_hash: str, outputs: list[str], seconds: float, **extra: Any) -> None:
        m = self.read_manifest()
        m.setdefault("stages", {})[stage] = {
            "status": "done",
            "inputs_hash": inputs_hash,
            "outputs": outputs,
            "seconds": round(seconds, 3),
            **extra,
        }
        write_json(self.manifest, m)


def safe_name(name: str) -> str:
    """A model name as a file name (plugin specs contain ':' and '.')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class Timer:
    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0
