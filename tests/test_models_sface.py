"""SFace through onnxruntime against OpenCV's own FaceRecognizerSF, on real generated faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import _faces
from faceaudit.models.base import STATUS_FTE, STATUS_OK
from faceaudit.models.detect import default_detector, detect_faces


@pytest.fixture(scope="module")
def model():
    from faceaudit.models.sface import SFaceRecognizer

    return SFaceRecognizer(device="cpu")


def _cos(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_repaired_graph_has_one_batched_input(model):
    assert model.input_name == "data"
    assert [i.name for i in model.session.get_inputs()] == ["data"]
    crops, found = model.align(_faces.faces(8)[:3])
    assert found.all()
    batched = model.embed_crops(crops)
    single = np.concatenate([model.embed_crops(crops[i : i + 1]) for i in range(3)])
    assert np.abs(batched - single).max() < 1e-4


def test_onnxruntime_workers_sleep_between_batches(model):
    # runtime.ort_session_options: spinning workers held a core between forward passes, which the
    # embed harness's reader thread needs (benchmarks/bench_embed.py --ort-spinning)
    assert model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_matches_opencv_face_recognizer_sf(model):
    cv_model = cv2.FaceRecognizerSF.create(str(model.path), "")
    images = _faces.faces(8)[:3]
    dets = detect_faces(images)
    for image, det in zip(images, dets):
        assert det is not None
        row = np.concatenate([det.box, det.landmarks.ravel(), [det.score]]).astype(np.float32)[None]
        cv_crop = cv_model.alignCrop(np.ascontiguousarray(image[:, :, ::-1]), row)
        cv_feat = cv_model.feature(cv_crop)[0]
        # same crop -> same network output (OpenCV feeds the BGR crop as RGB)
        ours_same_crop = model.embed_crops(np.ascontiguousarray(cv_crop[:, :, ::-1])[None])[0]
        assert np.abs(ours_same_crop - cv_feat).max() < 1e-3
        # our own alignment -> practically the same embedding
        ours, status = model.embed([image])
        assert status[0] == STATUS_OK
        assert _cos(ours[0], cv_feat) > 0.999


def test_genuine_pairs_are_more_similar_than_impostors(model):
    a, b = _faces.genuine_impostor_faces(5)
    ea, sa = model.embed(a)
    eb, sb = model.embed(b)
    ok = (sa == STATUS_OK) & (sb == STATUS_OK)
    ea, eb = ea[ok], eb[ok]
    n = len(ea)
    assert n >= 4
    sim = _cos(ea[:, None, :], eb[None, :, :])
    genuine = np.diag(sim)
    impostor = sim[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    assert genuine.mean() > impostor.mean() + 0.2
    assert np.mean(genuine[:, None] > impostor) > 0.9


def test_no_face_is_fte(model):
    emb, status = model.embed([_faces.noise_image(3), _faces.blank_image(value=30)])
    assert list(status) == [STATUS_FTE, STATUS_FTE]
    assert np.isnan(emb).all()


def test_detector_reports_original_coordinates():
    img = _faces.faces(8)[0]
    det = default_detector().detect(img)
    assert det is not None
    x, y, w, h = det.box
    assert 0 <= det.landmarks[:, 0].min() and det.landmarks[:, 0].max() <= 64
    assert 20 < w < 80 and 20 < h < 90
    # eyes above the mouth, first eye on the image's left
    assert det.landmarks[0, 0] < det.landmarks[1, 0]
    assert det.landmarks[:2, 1].mean() < det.landmarks[3:, 1].mean()
