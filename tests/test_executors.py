"""The executor interface (faceaudit.harness.executors): shards run in worker processes come back in
shard order and equal the serial result, so a table cannot depend on the executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceaudit.core.errors import BadInput
from faceaudit.harness.executors import LocalExecutor, get_executor


def embed_shard(paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """One shard of an embed stage: read the images, embed them with the colour-histogram plugin."""
    from plugins.color_model import ColorHistogram

    images = []
    for p in paths:
        if not Path(p).is_file():
            raise BadInput(f"{p}: cannot read image")
        images.append(np.asarray(Image.open(p).convert("RGB")))
    emb, status = ColorHistogram().embed(images)
    return emb, list(status)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(3)
    paths = []
    for i in range(24):
        img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        if i == 5:
            img[:] = 128  # flat: fails to enrol
        p = root / f"{i:02d}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p))
    return [paths[i:i + 5] for i in range(0, len(paths), 5)]


def test_local_workers_return_shards_in_order_equal_to_serial(shards):
    serial = LocalExecutor(workers=1).map(embed_shard, shards)
    with get_executor("local", workers=2) as ex:
        parallel = ex.map(embed_shard, shards)
    assert len(parallel) == len(shards)
    for (e1, s1), (e2, s2) in zip(serial, parallel):
        assert s1 == s2
        assert e1.tobytes() == e2.tobytes()
    assert serial[1][1][0] == "fte"  # image 5 is the first of shard 1


def test_a_failing_shard_raises_its_error(shards, tmp_path):
    bad = [shards[0], [str(tmp_path / "missing.png")]]
    with LocalExecutor(workers=2) as ex, pytest.raises(BadInput, match="missing.png: cannot read image"):
        ex.map(embed_shard, bad)


def test_unknown_executors_are_bad_input():
    # (ray without its package installed: tests/test_executor_ray.py)
    with pytest.raises(BadInput, match="unknown"):
        get_executor("dask")
    with pytest.raises(BadInput, match="--ray-address: only used with --executor ray"):
        get_executor("local", address="auto")


def load_color_model():
    """A worker's state: the model, built once per worker process."""
    import os

    from plugins.color_model import ColorHistogram

    model = ColorHistogram()
    model.built_in_pid = os.getpid()
    return model


def embed_with_state(model, paths: list[str]) -> tuple[np.ndarray, list[str], int, int]:
    emb, status = embed_shard(paths)
    return emb, status, model.built_in_pid, id(model)


def test_stateful_map_builds_the_state_once_per_worker_and_keeps_shard_order(shards):
    serial = LocalExecutor(workers=1).map(embed_shard, shards)
    one = list(LocalExecutor(workers=1).imap_with_state(load_color_model, embed_with_state, shards))
    assert len({(pid, obj) for _, _, pid, obj in one}) == 1  # one model for every shard
    with get_executor("local", workers=2) as ex:
        two = list(ex.imap_with_state(load_color_model, embed_with_state, iter(shards)))
    assert len(two) == len(shards)
    for (e1, s1), (e2, s2, _, _) in zip(serial, two):
        assert s1 == s2 and e1.tobytes() == e2.tobytes()
    # each worker built its model once (state is keyed by the worker process, not rebuilt per shard)
    states = {(pid, obj) for _, _, pid, obj in two}
    assert len(states) == len({pid for pid, _ in states}) <= 2
