"""Persistent embedding cache: image sha256 + model name + model version -> (status, embedding).

Layout: ``CACHE/embeddings/<model name>/<version hash>/shard-<hash>.npz``. Every embedded batch is
written as one small shard (temp file + rename), so an interrupted run keeps what it finished and
the next run resumes from there. Shards hold ``sha256`` [n] str, ``status`` [n] str and
``embedding`` [n, D] float32. When a model's folder collects many shards they are merged into one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from faceaudit.rundir import atomic_path, safe_name

#: merge a model's shards into one when there are more than this many
COMPACT_AT = 64
#: a shard's temp file older than this was left by a process killed mid-write (a live write takes
#: milliseconds); several processes share one cache, so younger ones may still be someone's write
STALE_TEMP_SECONDS = 3600


def default_cache_dir() -> Path:
    # an empty value counts as unset (not "the current directory")
    return Path(os.path.expanduser(os.getenv("FACEAUDIT_CACHE") or "~/.cache/faceaudit"))


class EmbeddingCache:
    """The cache entries of one (model name, model version)."""

    def __init__(self, root: str | os.PathLike | None, model_name: str, model_version: str):
        root = Path(root) if root is not None else default_cache_dir()
        version_key = hashlib.sha256(model_version.encode()).hexdigest()[:16]
        self.dir = root / "embeddings" / safe_name(model_name) / version_key
        self.entries: dict[str, tuple[str, np.ndarray]] = {}
        self._shards: list[Path] = []

    def load(self) -> "EmbeddingCache":
        if not self.dir.is_dir():
            return self
        self._remove_stale_temp_files()
        for shard in sorted(self.dir.glob("shard-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    shas, status, emb = z["sha256"], z["status"], z["embedding"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
                # A shard damaged outside our atomic writes: ignore it; its images are recomputed.
                continue
            for s, st, e in zip(shas.tolist(), status.tolist(), emb):
                self.entries[s] = (st, e)
            self._shards.append(shard)
        return self

    def _remove_stale_temp_files(self) -> None:
        now = time.time()
        for tmp in self.dir.glob(".shard-*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                    tmp.unlink()

    def get(self, sha: str) -> tuple[str, np.ndarray] | None:
        return self.entries.get(sha)

    def put(self, shas: list[str], status: list[str], emb: np.ndarray) -> None:
        if not shas:
            return
        emb = np.asarray(emb, dtype=np.float32)
        name = hashlib.sha256("\n".join(shas).encode()).hexdigest()[:20]
        path = self.dir / f"shard-{name}.npz"
        self._write(path, shas, status, emb)
        for s, st, e in zip(shas, status, emb):
            self.entries[s] = (st, e)
        self._shards.append(path)

    @staticmethod
    def _write(path: Path, shas: list[str], status: list[str], emb: np.ndarray) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, sha256=np.asarray(shas, dtype=str), status=np.asarray(status, dtype=str), embedding=emb)

    def compact(self) -> None:
        """Merge the shards this process has seen into one (others' new shards are left alone)."""
        shards = sorted(set(self._shards))
        if len(shards) <= COMPACT_AT:
            return
        shas = sorted(self.entries)
        emb = np.stack([self.entries[s][1] for s in shas]).astype(np.float32)
        status = [self.entries[s][0] for s in shas]
        merged = self.dir / f"shard-merged-{hashlib.sha256(''.join(shas).encode()).hexdigest()[:20]}.npz"
        self._write(merged, shas, status, emb)
        for shard in shards:
            if shard != merged:
                shard.unlink(missing_ok=True)
        self._shards = [merged]
