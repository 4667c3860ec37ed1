"""The Ray executor (issue #9): a local Ray cluster with 2 workers runs the real quick audit (DCGAN
faces through dlib and SFace, embedded by Ray actors that each load the model once) and its tables
equal the local executor's ``quick_run`` byte for byte; switching executors redoes no stage; a run
that lost some finished shards recomputes only those; without ray installed the executor is a
one-line BadInput (exit 2) naming the extra to install."""

from __future__ import annotations

import glob
import json
import shutil
import sys
from pathlib import Path

import pytest

from faceaudit.errors import BadInput

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
    import pandas as pd

    n_faces = len(pd.read_parquet(out / "faces.parquet"))
    assert n_shards >= 2 * 2 and n_faces > 2 * SHARD_FACES
    for model in ("dlib", "sface"):
        assert len(list((cache / "embeddings" / model).glob("*/shard-*.npz"))) >= 2
    m = json.loads((out / "manifest.json").read_text())
    assert m["executor"] == {"name": "ray", "workers": 2, "address": None}
    assert m["stages"]["embed:dlib"]["executor"]["name"] == "ray"


def test_switching_executor_redoes_no_stage(ray_run, tmp_path):
    from faceaudit import pipeline

    out, cache, _ = ray_run
    copy = Path(shutil.copytree(out, tmp_path / "run"))
    ctx = pipeline.audit(ROOT / "protocols" / "quick.yaml", copy, progress=False)  # local, in-process
    assert ctx.ran == []
    assert json.loads((copy / "manifest.json").read_text())["executor"]["name"] == "local"


def test_a_ray_run_that_lost_shards_recomputes_only_those(ray_run, ray_executor, tmp_path):
    """What a kill between shards leaves: some shards in the cache, the stage not recorded. The
    re-run sends only the missing faces to the actors and ends with the same table."""
    from faceaudit import pipeline

    out, cache, _ = ray_run
    copy = Path(shutil.copytree(out, tmp_path / "run"))
    cache_copy = Path(shutil.copytree(cache, tmp_path / "cache"))
    (copy / "embeddings" / "sface.parquet").unlink()
    shards = sorted((cache_copy / "embeddings" / "sface").glob("*/shard-*.npz"))
    for lost in shards[::2]:
        lost.unlink()
    counting = CountingExecutor(ray_executor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEAUDIT_CACHE", str(cache_copy))
        ctx = pipeline.audit(ROOT / "protocols" / "quick.yaml", copy, progress=False, executor=counting)
    assert ctx.ran[:1] == ["embed:sface"] and "embed:dlib" in ctx.skipped
    # every finished shard was one full SHARD_FACES-rounded shard but possibly the last: only the lost ones are redone
    assert counting.shards == len(shards[::2])
    assert (copy / "embeddings" / "sface.parquet").read_bytes() == (out / "embeddings" / "sface.parquet").read_bytes()


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
