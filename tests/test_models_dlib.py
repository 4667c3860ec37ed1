"""dlib's ResNet descriptor: our PyTorch port against dlib's own implementation, on real faces."""

from __future__ import annotations

import numpy as np
import pytest

import _faces
from faceaudit.models.base import STATUS_FTE, STATUS_OK
from faceaudit.models.dlib_format import DlibFormatError, load_face_resnet


@pytest.fixture(scope="module")
def model():
    from faceaudit.models.dlib_resnet import DlibResNetRecognizer

    return DlibResNetRecognizer(device="cpu")


def test_parser_reads_the_whole_network(model):
    w = load_face_resnet(model.weights_path)
    assert w.input_size == (150, 150)
    assert len(w.units) == 14  # 3 + 4 + 3 + 3 + 1 residual units
    assert w.fc_weight.shape == (256, 128)
    assert w.stem["con"]["weight"].shape == (32, 3, 7, 7)
    # dlib's input layer stores the per-channel means it subtracts
    assert np.allclose(w.avg_rgb, (122.782, 117.001, 104.298), atol=1e-3)


def test_parser_rejects_a_truncated_file(model, tmp_path):
    data = model.weights_path.read_bytes()
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError):
        load_face_resnet(bad)


def test_port_matches_dlib_on_generated_faces(model):
    import dlib

    chips, found = model.align(_faces.faces(8))
    assert found.sum() >= 6
    chips = chips[found][:4]
    ours = model.embed_crops(chips).astype(np.float64)
    theirs = np.array(dlib.face_recognition_model_v1(str(model.weights_path)).compute_face_descriptor(list(chips)))
    assert ours.shape == theirs.shape == (4, 128)
    assert np.abs(ours - theirs).max() < 1e-3
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() > 0.9999


def test_genuine_pairs_are_closer_than_impostors(model):
    a, b = _faces.genuine_impostor_faces(5)
    ea, sa = model.embed(a)
    eb, sb = model.embed(b)
    ok = (sa == STATUS_OK) & (sb == STATUS_OK)
    assert ok.sum() >= 4
    ea, eb = ea[ok], eb[ok]
    genuine = model.similarity(ea, eb)
    n = len(ea)
    impostor = np.array([model.similarity(ea[i : i + 1], eb[j : j + 1])[0] for i in range(n) for j in range(n) if i != j])
    assert genuine.mean() > impostor.mean()
    # ranking: the genuine mate is the most similar of all candidates for most probes
    assert np.mean(genuine[:, None] > impostor.reshape(n, n - 1)) > 0.9


def test_no_face_is_fte_with_nan(model):
    emb, status = model.embed([_faces.blank_image(), _faces.noise_image(1), _faces.faces(8)[0]])
    assert list(status[:2]) == [STATUS_FTE, STATUS_FTE]
    assert np.isnan(emb[:2]).all()
    assert status[2] == STATUS_OK and np.isfinite(emb[2]).all()


def test_metadata_records_device(model):
    meta = model.metadata()
    assert meta["device"] == "cpu" and meta["embedding_dim"] == 128
    assert model.version.startswith("resnet_v1-")
