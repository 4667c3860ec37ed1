"""The embed stage: every face image through one recognizer, batched, cached and resumable.

``embed_faces`` reads each PNG (as RGB), hands ``model.batch_size`` images at a time to
``model.embed`` and returns one row per face, in the order of the faces table. Results are kept in
a persistent cache keyed by image sha256 + model name + model version
(:mod:`faceaudit.harness.cache`), written after every batch: a second run does no model work and
an interrupted run resumes where it stopped. An image with no detectable face is a row with
status ``fte`` and a NaN embedding, not an error; an unreadable image, or a model that returns a
non-finite embedding for an image it calls ``ok``, is a one-line BadInput.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.harness.cache import EmbeddingCache
from faceaudit.harness.executors.base import Executor
from faceaudit.core.progress import ProgressReporter
from faceaudit.models.base import STATUS_FTE, STATUS_OK, FaceRecognizer

COLUMNS = ["face_id", "sha256", "model", "model_version", "status", "embedding"]
#: decode PNGs straight to RGB (OpenCV >= 4.12) instead of BGR plus a flipped copy: ~10 us an image,
#: a tenth of the harness's own cost per 64x64 face
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


def read_image(path: str | os.PathLike, shown_as: str | None = None) -> tuple[np.ndarray, str]:
    """``(RGB uint8 [H, W, 3], sha256 of the file bytes)``; BadInput when it cannot be read."""
    shown = shown_as or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise BadInput(f"{shown}: cannot read image") from None
    return decode_image(data, shown), hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, shown: str) -> np.ndarray:
    """RGB uint8 [H, W, 3] from an encoded image file's bytes; BadInput when they do not decode."""
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _IMREAD_RGB) if data else None
    if img is None:
        raise BadInput(f"{shown}: cannot read image")
    if _IMREAD_RGB == cv2.IMREAD_COLOR:  # OpenCV < 4.12 decodes to BGR only
        img = np.ascontiguousarray(img[:, :, ::-1])
    return img


def _read_batch(run_root: Path, paths: list[str], idx: list[int]) -> list[tuple[np.ndarray, str]]:
    """``read_image`` for the faces ``idx`` (runs on the reader thread)."""
    return [read_image(run_root / paths[i], shown_as=paths[i]) for i in idx]


def _check_output(model: FaceRecognizer, emb: Any, status: Any, n: int, face_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    emb = np.asarray(emb, dtype=np.float32)
    status = [str(s) for s in np.asarray(status, dtype=object).tolist()]
    if emb.ndim != 2 or emb.shape[0] != n or len(status) != n:
        raise BadInput(
            f"model {model.name}: embed() returned embeddings {emb.shape} and {len(status)} statuses for {n} images"
        )
    # one vectorised finiteness test per batch (not one per row); the first offending face in
    # batch order is reported, whichever of the two checks it fails
    is_ok = np.array([st == STATUS_OK for st in status], dtype=bool)
    valid = is_ok | np.array([st == STATUS_FTE for st in status], dtype=bool)
    bad = ~valid | (is_ok & ~np.isfinite(emb).all(axis=1))
    if bad.any():
        i = int(np.argmax(bad))
        if not valid[i]:
            raise BadInput(f"model {model.name}: status {status[i]!r} for face_id {face_ids[i]} (expected 'ok' or 'fte')")
        raise BadInput(f"model {model.name}: non-finite embedding (NaN/inf) for face_id {face_ids[i]} with status 'ok'")
    return emb, status


#: faces per shard sent to an executor's worker (rounded up to whole batches); each finished shard
#: is one cache file, the unit a killed run resumes from
SHARD_FACES = 128


def _check_sha(shas: list, i: int, path: str, digest: str) -> None:
    if shas[i] is None:
        shas[i] = digest
    elif shas[i] != digest:
        raise BadInput(f"{path}: sha256 {digest[:12]}... differs from the faces table ({shas[i][:12]}...)")


def embed_batch(model: FaceRecognizer, images: list[np.ndarray], face_ids: list[str],
                meta: list[dict] | None) -> tuple[list[str], np.ndarray]:
    """One ``model.embed`` call, checked; ``fte`` rows are NaN."""
    if meta is not None:
        emb, status = model.embed(images, meta=meta)
    else:
        emb, status = model.embed(images)
    emb, status = _check_output(model, emb, status, len(images), face_ids)
    emb[np.asarray(status) == STATUS_FTE] = np.nan
    return status, emb


def embed_shard(model: FaceRecognizer, shard: dict) -> tuple[list[str], np.ndarray]:
    """A worker's part of :func:`embed_faces`: decode a shard's image bytes and embed them batch by
    batch (``shard["batch_size"]``) with the worker's model. Returns ``(status, embeddings)``."""
    bs = int(shard["batch_size"])
    all_status: list[str] = []
    parts: list[np.ndarray] = []
    for start in range(0, len(shard["data"]), bs):
        sl = slice(start, start + bs)
        images = [decode_image(b, p) for b, p in zip(shard["data"][sl], shard["paths"][sl])]
        meta = shard["meta"][sl] if shard["meta"] is not None else None
        status, emb = embed_batch(model, images, shard["face_ids"][sl], meta)
        all_status.extend(status)
        parts.append(emb)
    return all_status, np.concatenate(parts, axis=0)


def embed_faces(
    model: FaceRecognizer,
    faces: pd.DataFrame,
    run_root: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    executor: Executor | None = None,
    model_factory: Callable[[], FaceRecognizer] | None = None,
    stats: dict | None = None,
) -> pd.DataFrame:
    """Embed every face of ``faces`` (columns ``face_id``, ``path`` relative to ``run_root``,
    optionally ``sha256`` and anything else, passed as ``meta`` to models that take it).

    Returns ``face_id, sha256, model, model_version, status, embedding`` (list of float32; NaN
    when ``fte``) in the order of ``faces``.

    With an ``executor`` of more than one worker and a ``model_factory`` (builds the same model in a
    worker), the images still to embed go out in shards of whole batches; each worker loads the model
    once, and each shard's result is written to the cache as it comes back (in shard order), so a
    killed run resumes from the finished shards. The table is the same as the serial one.
    ``stats``, when given, is filled with what was done: faces found in the cache, faces embedded,
    shards sent to the executor (0: embedded in this process).
    """
    for col in ("face_id", "path"):
        if col not in faces.columns:
            raise BadInput(f"faces: required column {col!r} is missing")
    run_root = Path(run_root)
    n = len(faces)
    face_ids = faces["face_id"].astype(str).tolist()
    paths = faces["path"].astype(str).tolist()
    has_sha = "sha256" in faces.columns
    shas: list[str | None] = faces["sha256"].astype(str).tolist() if has_sha else [None] * n

    use_cache = bool(getattr(model, "cacheable", True))
    cache = EmbeddingCache(cache_dir, model.name, model.version)
    if use_cache:
        cache.load()

    results: dict[int, tuple[str, np.ndarray]] = {}
    todo: list[int] = []
    for i in range(n):
        hit = cache.get(shas[i]) if (use_cache and shas[i] is not None) else None
        if hit is not None:
            if not (run_root / paths[i]).is_file():
                raise BadInput(f"{paths[i]}: cannot read image")
            results[i] = hit
        else:
            todo.append(i)

    meta_rows = faces.to_dict("records") if getattr(model, "accepts_meta", False) else None
    bs = max(1, int(getattr(model, "batch_size", 32) or 32))

    def record(idx: list[int], status: list[str], emb: np.ndarray) -> None:
        for j, i in enumerate(idx):
            results[i] = (status[j], emb[j])
        if use_cache:
            # one entry per distinct image; a duplicate image in the batch has the same result
            seen: dict[str, int] = {}
            for j, i in enumerate(idx):
                seen.setdefault(shas[i], j)
            keep = list(seen.values())
            cache.put([shas[idx[j]] for j in keep], [status[j] for j in keep], emb[keep])

    with ProgressReporter(f"embed {model.name}", n, enabled=progress) as bar:
        bar.advance(n - len(todo), cached=True)
        if executor is not None and model_factory is not None and executor.workers > 1 and todo:
            # Shards of whole batches, so every image is embedded in the same batch as in the serial
            # loop below (a batch's composition may change a model's floating-point results).
            size = bs * max(1, -(-SHARD_FACES // bs))
            shard_idx = [todo[s : s + size] for s in range(0, len(todo), size)]

            def shards():  # read lazily: the executor holds only a few shards' images at a time
                for idx in shard_idx:
                    data = []
                    for i in idx:
                        try:
                            blob = (run_root / paths[i]).read_bytes()
                        except OSError:
                            raise BadInput(f"{paths[i]}: cannot read image") from None
                        _check_sha(shas, i, paths[i], hashlib.sha256(blob).hexdigest())
                        data.append(blob)
                    yield {"face_ids": [face_ids[i] for i in idx], "paths": [paths[i] for i in idx], "data": data,
                           "meta": [meta_rows[i] for i in idx] if meta_rows is not None else None, "batch_size": bs}

            for idx, (status, emb) in zip(shard_idx, executor.imap_with_state(model_factory, embed_shard, shards())):
                record(idx, status, emb)
                bar.advance(len(idx))
            if stats is not None:
                stats["shards"] = len(shard_idx)
        else:
            # One reader thread reads, hashes and decodes the next batch while the model embeds this
            # one (file reads, sha256, PNG decoding and the built-in models all release the GIL), so
            # the harness's per-image cost hides behind the model's instead of adding to it. Checks,
            # cache writes and progress stay on this thread, in batch order; a reader error is raised
            # here when its batch comes up, so errors surface in the same order as without it.
            batches = [todo[start : start + bs] for start in range(0, len(todo), bs)]
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceaudit-read") as reader:
                pending = reader.submit(_read_batch, run_root, paths, batches[0]) if batches else None
                for k, idx in enumerate(batches):
                    decoded = pending.result()
                    if k + 1 < len(batches):
                        pending = reader.submit(_read_batch, run_root, paths, batches[k + 1])
                    images = []
                    for i, (img, digest) in zip(idx, decoded):
                        _check_sha(shas, i, paths[i], digest)
                        images.append(img)
                    status, emb = embed_batch(model, images, [face_ids[i] for i in idx],
                                              [meta_rows[i] for i in idx] if meta_rows is not None else None)
                    record(idx, status, emb)
                    bar.advance(len(idx))
    if use_cache:
        cache.compact()
    if stats is not None:
        stats.setdefault("shards", 0)
        stats.update(faces_cached=n - len(todo), faces_embedded=len(todo))

    dim = int(model.embedding_dim) if model.embedding_dim else None
    rows_status, rows_emb = [], []
    for i in range(n):
        st, e = results[i]
        e = np.asarray(e, dtype=np.float32)
        if dim is not None and e.shape != (dim,):
            raise BadInput(f"model {model.name}: embedding of face_id {face_ids[i]} has {e.shape[0]} values, expected {dim}")
        rows_status.append(st)
        rows_emb.append(e)
    return pd.DataFrame(
        {
            "face_id": face_ids,
            "sha256": shas,
            "model": model.name,
            "model_version": model.version,
            "status": rows_status,
            "embedding": rows_emb,
        },
        columns=COLUMNS,
    )
