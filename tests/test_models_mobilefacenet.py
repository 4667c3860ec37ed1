"""``mobilefacenet``: faceplugin's ArcFace-style MobileFaceNet (npm faceplugin-face-recognition-js@0.0.1).

Real photographs only: the six different people of InsightFace's t1.jpg (fetched by `make test`,
tools/fetch_test_photos.py) and the real weight file (fetched by `make setup`). Tests that need
either skip, saying why, when it could not be fetched.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import _faces
import _t1
from faceaudit.core.errors import ModelUnavailable
from faceaudit.models import faceplugin
from faceaudit.models.base import STATUS_FTE, STATUS_OK

ROOT = Path(__file__).resolve().parents[1]


def _need_weights() -> None:
    reason = faceplugin.missing_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def model():
    _need_weights()
    from faceaudit.models.registry import load_model

    return load_model("mobilefacenet", device="cpu")


@pytest.fixture(scope="module")
def t1():
    faces = _t1.t1_faces()
    assert len(faces) == 6
    return faces, [_t1.same_face(f) for f in faces]


# ---- real faces ---------------------------------------------------------------------------------
def test_real_face_and_its_mirrored_brightened_copy_rank_above_different_people(model, t1):
    from sklearn.metrics import roc_auc_score

    faces, same = t1
    emb, status = model.embed(faces + same)
    assert (status == STATUS_OK).all()
    assert emb.shape == (12, 512) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    # cosine is the model's similarity; its embeddings are returned on the unit sphere
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    n = len(faces)
    genuine = model.similarity(emb[:n], emb[n:])
    i, j = np.triu_indices(2 * n, 1)
    different = (i % n) != (j % n)
    impostor = model.similarity(emb[i[different]], emb[j[different]])
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    auc = roc_auc_score(labels, np.r_[genuine, impostor])
    # measured: AUC 1.0; genuine 0.63-0.94 vs at most 0.33 between different people
    assert auc >= 0.95, (auc, genuine.round(3), impostor.max())


def test_batches_agree_with_single_faces(model, t1):
    # the file's last Reshape is [1, -1]: without the load-time repair a batch comes back as one row
    faces, _ = t1
    batch, _ = model.embed(faces[:3])
    for k in range(3):
        single, _ = model.embed(faces[k : k + 1])
        assert np.abs(single[0] - batch[k]).max() < 1e-4


def test_faceless_images_are_fte_not_a_crash(model, t1):
    emb, status = model.embed([_faces.noise_image(3, size=160), _faces.blank_image(160), t1[0][0]])
    assert list(status) == [STATUS_FTE, STATUS_FTE, STATUS_OK]
    assert np.isnan(emb[:2]).all() and np.isfinite(emb[2]).all()


def test_metadata_states_provenance_and_unknown_training_data(model):
    meta = model.metadata()
    assert meta["name"] == "mobilefacenet" and meta["embedding_dim"] == 512
    assert meta["package"] == "npm faceplugin-face-recognition-js" and meta["package_version"] == "0.0.1"
    assert meta["weights_file"] == "package/model/fr_feature.onnx"
    assert meta["weights_sha256"] == faceplugin.SHA256 and faceplugin.SHA256 in meta["weights"]
    assert meta["license"].startswith("MIT")
    assert meta["training_data"] == "not stated by the package"
    assert "BGR" in meta["input_size"] and faceplugin.SHA256[:12] in model.version


# ---- missing or damaged weights -----------------------------------------------------------------
def test_missing_weights_are_one_line_model_unavailable(tmp_path, monkeypatch):
    from faceaudit.models.registry import list_models, load_model

    monkeypatch.setenv(faceplugin.ENV_DIR, str(tmp_path / "empty"))
    row = list_models().set_index("name").loc["mobilefacenet"]
    assert not row["available"] and "\n" not in row["reason"]
    assert "fr_feature.onnx" in row["reason"] and "faceplugin-face-recognition-js@0.0.1" in row["reason"]
    with pytest.raises(ModelUnavailable) as err:
        load_model("mobilefacenet", device="cpu")
    message = str(err.value)
    assert "\n" not in message and "fr_feature.onnx" in message and "faceplugin-face-recognition-js@0.0.1" in message


def test_corrupt_weights_are_refused(tmp_path):
    _need_weights()
    from faceaudit.models.mobilefacenet import MobileFaceNetRecognizer

    data = bytearray((faceplugin.models_dir() / faceplugin.FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    (tmp_path / faceplugin.FILE).write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match=r"fr_feature\.onnx has sha256 .*faceplugin-face-recognition-js@0\.0\.1"):
        MobileFaceNetRecognizer(device="cpu", weights_dir=tmp_path)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_cli_exits_2_in_one_line_naming_file_and_package(tmp_path, damage):
    weights = tmp_path / "faceplugin"
    weights.mkdir()
    if damage == "corrupt":
        (weights / faceplugin.FILE).write_bytes(b"not an onnx file")
    env = {**os.environ, faceplugin.ENV_DIR: str(weights), "FACEAUDIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "faceaudit.cli", "audit", str(ROOT / "protocols" / "quick.yaml"),
         "--model", "mobilefacenet", "--out", str(tmp_path / "run"), "--no-progress", "--no-report"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "fr_feature.onnx" in lines[0] and "faceplugin-face-recognition-js@0.0.1" in lines[0], lines
    assert not (tmp_path / "run" / "faces.parquet").exists()  # refused before any face was rendered


# ---- the fetch step -----------------------------------------------------------------------------
def _tarball(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "faceplugin-face-recognition-js-0.0.1.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_fetch_installs_only_the_verified_file(tmp_path):
    _need_weights()
    real = (faceplugin.models_dir() / faceplugin.FILE).read_bytes()
    dest = tmp_path / "weights"
    tampered = _tarball(tmp_path, {faceplugin.MEMBER: real[:-1] + b"\0", "package/model/fr_age.onnx": b"not ours"})
    reason = faceplugin.fetch(dest, tarball=tampered)
    assert reason is not None and "fr_feature.onnx (sha256 mismatch)" in reason and "\n" not in reason
    assert sorted(p.name for p in dest.iterdir()) == [faceplugin.FAILED_MARKER]
    assert "last fetch failed" in faceplugin.missing_reason(dest)
    assert faceplugin.fetch(dest, tarball=_tarball(tmp_path, {faceplugin.MEMBER: real})) is None
    assert not (dest / faceplugin.FAILED_MARKER).exists()
    assert faceplugin.weights_path(dest).read_bytes() == real


def test_fetch_without_npm_reports_one_line_and_setup_goes_on(tmp_path, capsys, monkeypatch):
    reason = faceplugin.fetch(tmp_path / "w", npm="no-such-npm-binary")
    assert reason is not None and "not found" in reason and "\n" not in reason
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # a machine without node/npm
    assert faceplugin.main(["fetch", str(tmp_path / "w")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unavailable" in err
    assert "not fetched" in faceplugin.missing_reason(tmp_path / "w")


def test_model_card_states_provenance_and_unknown_training_data(quick_run, tmp_path):
    """The card's model section shows where MobileFaceNet's weights come from and that its training
    data are not stated (an audit of the quick protocol's faces with `--model mobilefacenet`)."""
    import html
    import shutil

    from typer.testing import CliRunner

    from faceaudit.cli import app

    _need_weights()
    run = Path(shutil.copytree(quick_run, tmp_path / "run"))
    result = CliRunner().invoke(app, ["audit", str(ROOT / "protocols" / "quick.yaml"), "--model", "mobilefacenet",
                                      "--device", "cpu", "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    page = html.unescape((run / "report.html").read_text(encoding="utf-8"))
    section = page[page.index("mobilefacenet"):]
    assert "Training data" in section and "not stated by the package" in section
    assert "npm faceplugin-face-recognition-js@0.0.1" in section and faceplugin.REPOSITORY in section
    assert f"package/model/fr_feature.onnx sha256 {faceplugin.SHA256}" in section
    assert "MIT" in section
