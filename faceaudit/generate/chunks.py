"""The chunked generate stage every backend runs on: resumable chunks of seeds, on any executor.

A backend splits its seeds into chunks and says how to render one (:class:`Chunk`: its rows of
the faces table, its bookkeeping, its PNG files). :func:`run_chunks` renders the chunks not yet
finished, in this process or on an executor (faceaudit.harness.executors: each worker builds the
backend's state once, e.g. a loaded model), and writes every image, then the chunk's rows and
bookkeeping under ``RUN/.partial/`` (keyed by everything that determines the chunk). A killed stage
therefore resumes from the finished chunks; the driver alone writes into the run directory, so
workers need no access to it and the bytes are the same whichever executor ran a chunk.
:func:`finish_chunks` removes images of an earlier design and, unless the caller keeps them until
it has recorded the stage, the partial chunks.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import pandas as pd

from faceaudit.generate.faces import remove_stale_images
from faceaudit.rundir import RunDir, read_table, write_bytes, write_json, write_table

#: folder of finished chunks inside the run directory
PARTIAL_DIR = ".partial"


@dataclass
class Chunk:
    """One rendered chunk: its faces-table rows, its bookkeeping and its images.

    ``files`` holds ``(path relative to the run, PNG bytes)`` for every row; the driver writes them.
    ``info`` must be JSON-serialisable (it is stored next to the rows for a resume).
    """

    rows: pd.DataFrame
    info: dict[str, Any]
    files: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class ChunkRun:
    """What :func:`run_chunks` returns: every chunk's rows and info in chunk order."""

    tables: list[pd.DataFrame]
    infos: list[dict[str, Any]]
    #: chunks read back from ``RUN/.partial`` instead of rendered
    resumed: int = 0
    #: chunks rendered in this call (here or on the executor)
    rendered: int = 0

    def faces(self) -> pd.DataFrame:
        return pd.concat(self.tables, ignore_index=True) if self.tables else pd.DataFrame()


def split_seeds(seeds: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive chunks of ``size`` seeds (the last one may be shorter).

    Examples
    --------
    >>> split_seeds(range(5), 2)
    [[0, 1], [2, 3], [4]]
    """
    seeds = [int(s) for s in seeds]
    return [seeds[i : i + size] for i in range(0, len(seeds), max(1, int(size)))]


def _paths(run: RunDir, index: int):
    partial = run.root / PARTIAL_DIR
    return partial / f"chunk{index:04d}.parquet", partial / f"chunk{index:04d}.json"


def load_partial(run: RunDir, index: int, key: str) -> tuple[pd.DataFrame, dict] | None:
    """Chunk ``index``'s rows and info when it finished under ``key`` and its images are all there."""
    table, meta = _paths(run, index)
    if not (table.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("key") != key:
            return None
        df = read_table(table)
    except (OSError, ValueError):
        return None
    if not all((run.root / p).exists() for p in df["path"]):
        return None
    return df, info


def run_chunks(
    run: RunDir,
    key: str,
    chunks: Sequence[list[int]],
    render: Callable[[list[int]], Chunk] | None = None,
    *,
    executor: Any = None,
    worker_state: Callable[[], Any] | None = None,
    render_with_state: Callable[[Any, list[int]], Chunk] | None = None,
    on_chunk: Callable[[list[int], pd.DataFrame, dict, str], None] | None = None,
) -> ChunkRun:
    """Render every chunk not finished under ``key``; return all chunks' rows and info in order.

    Parameters
    ----------
    run : RunDir
        The run directory (images and ``.partial/`` are written there).
    key : str
        Hash of everything that determines a chunk's rows; a partial chunk with another key is redone.
    chunks : sequence of list of int
        The seeds of each chunk, in the order the faces table lists them.
    render : callable, optional
        ``render(seeds) -> Chunk`` in this process (used without an executor).
    executor : Executor, optional
        Renders the chunks with ``executor.imap_with_state(worker_state, render_with_state, todo)``;
        ``worker_state`` and ``render_with_state`` must be picklable (module-level functions or
        ``functools.partial`` of them).
    on_chunk : callable, optional
        ``on_chunk(seeds, rows, info, how)`` after each chunk, ``how`` one of ``"resumed"``,
        ``"rendered"`` (here) or ``"remote"`` (on the executor): for progress bars.

    Returns
    -------
    ChunkRun

    Examples
    --------
    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp())
    >>> def render(seeds):
    ...     return Chunk(pd.DataFrame({"seed": seeds, "path": [f"images/{s}.png" for s in seeds]}), {"n": len(seeds)},
    ...                  [(f"images/{s}.png", b"png") for s in seeds])
    >>> first = run_chunks(run, "k", split_seeds(range(3), 2), render)
    >>> again = run_chunks(run, "k", split_seeds(range(3), 2), render)
    >>> first.rendered, again.resumed, list(again.faces()["seed"])
    (2, 2, [0, 1, 2])
    """
    loaded_all = [load_partial(run, c, key) for c in range(len(chunks))]
    remote: Iterator[Chunk] | None = None
    if executor is not None:
        if worker_state is None or render_with_state is None:
            raise ValueError("run_chunks: an executor needs worker_state and render_with_state")
        todo = [chunk for chunk, loaded in zip(chunks, loaded_all) if loaded is None]
        remote = executor.imap_with_state(worker_state, render_with_state, todo) if todo else iter(())
    elif render is None:
        raise ValueError("run_chunks: give render (in this process) or an executor")
    out = ChunkRun([], [])
    for c, chunk in enumerate(chunks):
        loaded = loaded_all[c]
        if loaded is not None:
            df, info = loaded
            out.resumed += 1
            how = "resumed"
        else:
            result = next(remote) if remote is not None else render(list(chunk))
            df, info = result.rows, result.info
            for rel, data in result.files:
                write_bytes(run.root / rel, data)
            table_path, meta_path = _paths(run, c)
            write_table(table_path, df)
            write_json(meta_path, {**info, "key": key})
            out.rendered += 1
            how = "remote" if remote is not None else "rendered"
        if on_chunk is not None:
            on_chunk(list(chunk), df, info, how)
        out.tables.append(df)
        out.infos.append(info)
    return out


def finish_chunks(run: RunDir, faces: pd.DataFrame, keep_partial: bool = False) -> None:
    """Delete images the faces table no longer lists; drop ``RUN/.partial`` unless ``keep_partial``
    (the pipeline removes it once it has recorded the stage, so a kill in between still resumes)."""
    remove_stale_images(run, set(faces["path"]) if len(faces) else set())
    if not keep_partial:
        shutil.rmtree(run.root / PARTIAL_DIR, ignore_errors=True)
