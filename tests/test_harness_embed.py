"""The embed harness: order, fte rows, cache hits, resume after an interruption, bad input."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import _faces
from faceaudit.core.errors import BadInput
from faceaudit.harness.embed import embed_faces
from faceaudit.core.progress import ProgressReporter
from faceaudit.models.base import STATUS_FTE, STATUS_OK, FaceRecognizer
from faceaudit.rundir import sha256_file


@pytest.fixture(scope="module")
def sface():
    from faceaudit.models.sface import SFaceRecognizer

    return SFaceRecognizer(device="cpu")


class CountingRecognizer(FaceRecognizer):
    """Wraps a real recognizer and counts the images it is asked to embed; can be told to stop
    (raise) after a number of calls, to simulate an interrupted run."""

    def __init__(self, base: FaceRecognizer, batch_size: int = 2, fail_after_calls: int | None = None):
        self.base = base
        self.name, self.version, self.embedding_dim = base.name, base.version, base.embedding_dim
        self.batch_size = batch_size
        self.fail_after_calls = fail_after_calls
        self.images_seen = 0
        self.calls = 0

    def embed(self, images):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.images_seen += len(images)
        return self.base.embed(images)


class NaNRecognizer(FaceRecognizer):
    name, version, embedding_dim = "broken", "1", 4

    def embed(self, images):
        emb = np.ones((len(images), 4), np.float32)
        emb[-1, 2] = np.nan
        return emb, np.array([STATUS_OK] * len(images), dtype=object)


def make_run(root: Path, n_faces: int = 4) -> pd.DataFrame:
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    pics = list(_faces.faces(8)[:n_faces]) + [_faces.noise_image(5)]
    for i, img in enumerate(pics):
        rel = f"images/face_{i:03d}.png"
        cv2.imwrite(str(root / rel), np.ascontiguousarray(img[:, :, ::-1]))
        rows.append(
            {"face_id": f"f{i:03d}", "path": rel, "sha256": sha256_file(root / rel), "group": "skin=light" if i % 2 else "skin=dark"}
        )
    return pd.DataFrame(rows)


def test_embed_order_status_cache_and_resume(sface, tmp_path):
    run = tmp_path / "run"
    faces = make_run(run)  # 4 faces + 1 noise image
    cache = tmp_path / "cache"

    # an interrupted first run keeps the batches it finished ...
    broken = CountingRecognizer(sface, batch_size=2, fail_after_calls=1)
    with pytest.raises(KeyboardInterrupt):
        embed_faces(broken, faces, run, cache_dir=cache, progress=False)
    assert broken.images_seen == 2

    # ... and the next run embeds only the rest
    model = CountingRecognizer(sface, batch_size=2)
    out = embed_faces(model, faces, run, cache_dir=cache, progress=False)
    assert model.images_seen == 3
    assert list(out.columns) == ["face_id", "sha256", "model", "model_version", "status", "embedding"]
    assert out["face_id"].tolist() == faces["face_id"].tolist()
    assert out["status"].tolist() == [STATUS_OK] * 4 + [STATUS_FTE]
    assert np.isnan(out["embedding"].iloc[4]).all()
    first = np.stack(out["embedding"].iloc[:4])
    assert first.dtype == np.float32 and first.shape == (4, 128) and np.isfinite(first).all()

    # identical to embedding directly with the model
    direct, _ = sface.embed([cv2.imread(str(run / p))[:, :, ::-1] for p in faces["path"][:4]])
    assert np.allclose(first, direct, atol=1e-5)

    # a second run is served from the cache: no model work at all
    again = CountingRecognizer(sface, batch_size=2)
    out2 = embed_faces(again, faces, run, cache_dir=cache, progress=False)
    assert again.images_seen == 0
    assert np.array_equal(np.stack(out2["embedding"].iloc[:4]), first)
    assert out2["status"].tolist() == out["status"].tolist()


def test_cache_dir_from_environment(sface, tmp_path, monkeypatch):
    run = tmp_path / "run"
    faces = make_run(run, n_faces=1)
    monkeypatch.setenv("FACEAUDIT_CACHE", str(tmp_path / "envcache"))
    embed_faces(CountingRecognizer(sface), faces, run, progress=False)
    assert list((tmp_path / "envcache" / "embeddings").rglob("shard-*.npz"))


def test_unreadable_image_is_one_line_bad_input(sface, tmp_path):
    run = tmp_path / "run"
    faces = make_run(run, n_faces=2)
    (run / "images" / "face_001.png").write_bytes(b"not a png")
    with pytest.raises(BadInput) as err:
        embed_faces(sface, faces, run, cache_dir=tmp_path / "c", progress=False)
    assert str(err.value) == "images/face_001.png: cannot read image"
    faces.loc[0, "path"] = "images/missing.png"
    with pytest.raises(BadInput, match=r"^images/missing.png: cannot read image$"):
        embed_faces(sface, faces, run, cache_dir=tmp_path / "c", progress=False)


def test_nan_embedding_with_ok_status_is_bad_input(tmp_path):
    run = tmp_path / "run"
    faces = make_run(run, n_faces=2)
    with pytest.raises(BadInput, match=r"model broken: non-finite embedding .* face_id f002"):
        embed_faces(NaNRecognizer(), faces, run, cache_dir=tmp_path / "c", progress=False)


def test_group_metadata_reaches_meta_aware_models(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from faceaudit.models.noisy import NoisyRecognizer
    from faceaudit.models.registry import load_model

    run = tmp_path / "run"
    faces = make_run(run, n_faces=4)
    base = load_model("plugins.color_model:factory")
    clean = np.stack(embed_faces(base, faces, run, cache_dir=tmp_path / "c", progress=False)["embedding"].iloc[:4])
    noisy = NoisyRecognizer(base, sigma=1.0, groups={"skin=light"}, seed=0)
    out = embed_faces(noisy, faces, run, cache_dir=tmp_path / "c", progress=False)
    emb = np.stack(out["embedding"].iloc[:4])
    light = (faces["group"].iloc[:4] == "skin=light").to_numpy()
    assert np.allclose(emb[~light], clean[~light])
    assert not np.allclose(emb[light], clean[light])
    assert not list((tmp_path / "c" / "embeddings").glob("color-hist_noise*")), "noisy results must not be cached"


def test_progress_without_terminal_prints_about_every_ten_percent():
    stream = io.StringIO()
    with ProgressReporter("embed x", 200, stream=stream) as bar:
        for _ in range(100):
            bar.advance(2)
    lines = stream.getvalue().splitlines()
    assert 9 <= len(lines) <= 11
    assert lines[-1].startswith("embed x: 200/200 (100%)")
    assert "\r" not in stream.getvalue()


def test_reader_errors_surface_when_their_batch_comes_up(sface, tmp_path):
    # The reader thread decodes one batch ahead of the model. A bad image must still stop the run
    # only after every earlier batch was embedded and cached, exactly as a read in line would.
    from faceaudit.harness.cache import EmbeddingCache

    run = tmp_path / "run"
    faces = make_run(run)  # 5 images, batches of 2: [0, 1] [2, 3] [4]
    (run / "images" / "face_004.png").write_bytes(b"not a png")
    model = CountingRecognizer(sface, batch_size=2)
    with pytest.raises(BadInput, match=r"^images/face_004.png: cannot read image$"):
        embed_faces(model, faces, run, cache_dir=tmp_path / "c", progress=False)
    assert model.images_seen == 4
    cached = EmbeddingCache(tmp_path / "c", sface.name, sface.version).load().entries
    assert sorted(cached) == sorted(faces["sha256"].iloc[:4])

    # a bad image in the first batch: nothing is embedded
    (run / "images" / "face_001.png").write_bytes(b"")
    model = CountingRecognizer(sface, batch_size=2)
    with pytest.raises(BadInput, match=r"^images/face_001.png: cannot read image$"):
        embed_faces(model, faces, run, cache_dir=tmp_path / "c2", progress=False)
    assert model.images_seen == 0


def test_read_image_gives_rgb_like_pillow_for_every_png_colour_type(tmp_path):
    # read_image decodes straight to RGB (OpenCV's IMREAD_COLOR_RGB where it exists); Pillow is
    # the independent reference, on grey, grey+alpha, palette, RGB and RGBA files.
    from PIL import Image

    from faceaudit.harness.embed import read_image

    rgb = _faces.faces(1)[0]
    pics = {
        "L": Image.fromarray(rgb).convert("L"),
        "LA": Image.fromarray(rgb).convert("LA"),
        "P": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray(np.dstack([rgb, np.arange(rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]) % 256]).astype(np.uint8)),
    }
    for mode, pic in pics.items():
        path = tmp_path / f"{mode}.png"
        pic.save(path)
        img, digest = read_image(path)
        with Image.open(path) as ref:
            expected = np.asarray(ref.convert("RGB"))
        assert img.dtype == np.uint8 and img.flags.c_contiguous, mode
        assert np.array_equal(img, expected), mode
        assert digest == sha256_file(path)
    assert np.array_equal(read_image(tmp_path / "RGB.png")[0], rgb)
