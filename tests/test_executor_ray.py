"""The Ray executor (issue #9): a local Ray cluster with 2 workers runs the real quick audit (DCGAN
faces through dlib and SFace, embedded by Ray actors that each load the model once) and its tables
equal the local executor's ``quick_run`` byte for byte; switching executors redoes no stage; a run
that lost some finished shards recomputes only those; without ray installed the executor is a
one-line BadInput (exit 2) naming the extra to install."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceaudit.core.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
TABLES = ["faces.parquet", "embeddings/*.parquet", "scores/*.parquet", "results/*.parquet"]


class CountingExecutor:
    """Wraps an executor and counts the shards sent to its stateful workers."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.workers = inner.workers
        self.shards = 0

    def describe(self) -> dict:
        return self.inner.describe()

    def imap_with_state(self, factory, fn, items):
        def counted():
            for x in items:
                self.shards += 1
                yield x

        return self.inner.imap_with_state(factory, fn, counted())


def _tables(root: Path) -> dict[str, bytes]:
    out = {}
    for pattern in TABLES:
        for path in sorted(glob.glob(str(root / pattern))):
            out[str(Path(path).relative_to(root))] = Path(path).read_bytes()
    return out


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'faceaudit[ray]')")
    from faceaudit.harness.executors import get_executor

    ex = get_executor("ray", workers=2)  # a local cluster: ray.init(num_cpus=2)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, ray_executor):
    """The quick audit on Ray, with an empty embedding cache of its own so every face is embedded by
    the actors (the local ``quick_run`` fills the session's cache)."""
    from faceaudit import pipeline

    cache = tmp_path_factory.mktemp("ray-cache")
    out = tmp_path_factory.mktemp("ray-runs") / "quick"
    counting = CountingExecutor(ray_executor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEAUDIT_CACHE", str(cache))
        pipeline.audit(ROOT / "protocols" / "quick.yaml", out, progress=False, executor=counting)
    return out, cache, counting.shards


def test_ray_quick_audit_tables_equal_the_local_executors_byte_for_byte(ray_run, quick_run):
    out, cache, n_shards = ray_run
    local, remote = _tables(quick_run), _tables(out)
    assert set(local) == set(remote)
    assert {"faces.parquet", "scores/dlib.parquet", "scores/sface.parquet", "results/error_rates.parquet",
            "results/contrasts.parquet"} <= set(local)
    different = [name for name in local if local[name] != remote[name]]
    assert different == []
    # the embedding really went through Ray in several shards per model (one cache file each)
    from faceaudit.harness.embed import SHARD_FACES

    n_faces = len(pd.read_parquet(out / "faces.parquet"))
    assert n_shards >= 2 * 2 and n_faces > 2 * SHARD_FACES
    for model in ("dlib", "sface"):
        assert len(list((cache / "embeddings" / model).glob("*/shard-*.npz"))) >= 2
    m = json.loads((out / "manifest.json").read_text())
    assert m["executor"] == {"name": "ray", "workers": 2, "address": None}
    for model in ("dlib", "sface"):
        stage = m["stages"][f"embed:{model}"]
        assert stage["executor"]["name"] == "ray"
        assert stage["work"]["faces_embedded"] == n_faces and stage["work"]["faces_cached"] == 0
        assert stage["work"]["shards"] >= 2
    # the rest of the shards are the generate stage's chunks of seeds, rendered and measured by the actors
    from faceaudit.generate.dcgan.design import CHUNK_SEEDS

    n_chunks = -(-16 // CHUNK_SEEDS)  # the quick protocol's 16 seeds
    assert m["stages"]["generate"]["executor"]["name"] == "ray"
    assert sum(m["stages"][f"embed:{x}"]["work"]["shards"] for x in ("dlib", "sface")) + n_chunks == n_shards


def test_switching_executor_redoes_no_stage(ray_run, tmp_path):
    from faceaudit import pipeline

    out, cache, _ = ray_run
    copy = Path(shutil.copytree(out, tmp_path / "run"))
    ctx = pipeline.audit(ROOT / "protocols" / "quick.yaml", copy, progress=False)  # local, in-process
    assert ctx.ran == []
    assert json.loads((copy / "manifest.json").read_text())["executor"]["name"] == "local"


def _shard_shas(folder: Path) -> dict[str, list[str]]:
    out = {}
    for shard in sorted(folder.glob("*/shard-*.npz")):
        with np.load(shard, allow_pickle=False) as z:
            out[shard.name] = z["sha256"].tolist()
    return out


@pytest.mark.slow
def test_a_ray_audit_killed_mid_embedding_resumes_without_redoing_finished_shards(ray_run, ray_executor, tmp_path):
    """``faceaudit audit --executor ray`` SIGKILLed (its whole process group: the local Ray cluster
    with it) once SFace's first shards are in the cache, then resumed: the finished shards are not
    sent again, no face is embedded twice or missed, and the tables equal the uninterrupted run's.
    (To keep it short the killed run starts from a copy of the finished run without SFace's
    embeddings, so it goes straight to embedding, and the resume runs in this process on the
    module's Ray cluster: same code path as the command.)"""
    from faceaudit import pipeline

    out, _, _ = ray_run
    run, cache = Path(shutil.copytree(out, tmp_path / "killed")), tmp_path / "cache"
    (run / "embeddings" / "sface.parquet").unlink()
    sface = cache / "embeddings" / "sface"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FACEAUDIT_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "faceaudit.cli", "audit", str(ROOT / "protocols" / "quick.yaml"), "--out", str(run),
           "--no-progress", "--executor", "ray", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while not list(sface.glob("*/shard-*.npz")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the audit ended (or failed) before SFace's first shard was cached"
    before = _shard_shas(sface)
    assert before and not (run / "embeddings" / "sface.parquet").exists()

    counting = CountingExecutor(ray_executor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEAUDIT_CACHE", str(cache))
        ctx = pipeline.audit(ROOT / "protocols" / "quick.yaml", run, progress=False, executor=counting)
    assert ctx.ran[0] == "embed:sface" and {"generate", "embed:dlib"} <= set(ctx.skipped)
    after = _shard_shas(sface)
    assert all(after[name] == shas for name, shas in before.items())  # finished shards kept as they were
    new = [sha for name, shas in after.items() if name not in before for sha in shas]
    old = [sha for shas in before.values() for sha in shas]
    faces = pd.read_parquet(run / "faces.parquet")
    assert not set(new) & set(old)  # nothing finished was sent again
    assert sorted(new + old) == sorted(set(faces["sha256"]))  # every distinct image exactly once
    assert counting.shards == len(after) - len(before)
    work = json.loads((run / "manifest.json").read_text())["stages"]["embed:sface"]["work"]
    assert work["shards"] == counting.shards and work["faces_embedded"] == len(new)
    assert _tables(run) == _tables(out)


def test_without_ray_the_executor_is_a_one_line_bad_input(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from faceaudit.cli import app
    from faceaudit.harness.executors import get_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(BadInput, match=r"pip install 'faceaudit\[ray\]'"):
        get_executor("ray", workers=2)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["audit", str(ROOT / "protocols" / "quick.yaml"), "--out", str(out),
                                      "--executor", "ray", "--no-progress"])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'faceaudit[ray]'" in lines[0]
    assert not out.exists()  # refused before any work: nothing half-written


def test_an_unreadable_image_in_a_ray_shard_is_a_one_line_bad_input(ray_run, ray_executor, tmp_path):
    """The worker's BadInput comes back as itself (not wrapped in Ray's traceback)."""
    import functools

    from faceaudit.harness.embed import embed_faces
    from faceaudit.models.registry import load_model

    out, _, _ = ray_run
    faces = pd.read_parquet(out / "faces.parquet").head(3)[["face_id", "path"]]
    for path in faces["path"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / path, tmp_path / path)
    bad = faces["path"].iloc[1]
    (tmp_path / bad).write_bytes(b"not a png")
    with pytest.raises(BadInput) as err:
        embed_faces(load_model("sface"), faces, tmp_path, cache_dir=tmp_path / "cache", progress=False,
                    executor=ray_executor, model_factory=functools.partial(load_model, "sface"))
    assert str(err.value) == f"{bad}: cannot read image"
    assert type(err.value) is BadInput
