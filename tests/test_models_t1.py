"""Real photographs: on the six different people of InsightFace's t1.jpg, each offline model scores a
face against its flipped, slightly brightened copy higher than two different people (dlib and SFace:
every such pair, by a margin; all six offline models, which the default audit runs: AUC >= 0.95)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import _t1
from faceaudit.models.base import STATUS_OK
from faceaudit.models.registry import load_model


@pytest.fixture(scope="module")
def t1():
    faces = _t1.t1_faces()
    assert len(faces) == 6
    return faces, [_t1.same_face(f) for f in faces]


@pytest.mark.parametrize("spec", ["dlib", "sface"])
def test_same_face_beats_every_pair_of_different_people(spec, t1):
    faces, same = t1
    model = load_model(spec, device="cpu")
    emb, status = model.embed(faces + same)
    assert (status == STATUS_OK).all()
    n = len(faces)
    genuine = model.similarity(emb[:n], emb[n:])
    idx = [(i, j) for i in range(2 * n) for j in range(2 * n) if i % n != j % n and i < j]
    different = model.similarity(emb[[i for i, _ in idx]], emb[[j for _, j in idx]])
    assert genuine.min() > different.max(), (genuine.round(3), different.max())
    # and by a clear margin (measured: dlib -0.34 vs -0.66, sface 0.65 vs 0.32)
    assert genuine.min() - different.max() > 0.1


#: every built-in model that runs offline after `make setup`
SIX_OFFLINE = ["dlib", "sface", "faceres", "mobileface", "facenet", "mobilefacenet"]
#: the offline models the default audit leaves out, and why (protocols/default.yaml)
LEFT_OUT_OF_DEFAULT = {"facenet": "its ~2 min of CPU embedding would take `make audit` past 10 minutes"}


def test_the_offline_models_are_the_six_and_the_default_audit_runs_five():
    import yaml

    from faceaudit.models.registry import offline_builtin_models

    assert offline_builtin_models() == SIX_OFFLINE
    default = yaml.safe_load((Path(__file__).resolve().parents[1] / "protocols" / "default.yaml").read_text())
    assert sorted(default["models"]) == sorted(set(SIX_OFFLINE) - set(LEFT_OUT_OF_DEFAULT))
    assert len(default["models"]) >= 5


@pytest.mark.parametrize("spec", SIX_OFFLINE)
def test_every_offline_model_ranks_a_mirrored_brightened_copy_above_different_people(spec, t1):
    """AUC of (face, its mirrored + brightened copy) against every pair of different people among the
    twelve images, on t1.jpg's six real faces: >= 0.95 for each model the default audit runs."""
    from sklearn.metrics import roc_auc_score

    faces, same = t1
    model = load_model(spec, device="cpu")
    emb, status = model.embed(faces + same)
    assert (status == STATUS_OK).all(), status
    n = len(faces)
    genuine = model.similarity(emb[:n], emb[n:])
    i, j = np.triu_indices(2 * n, 1)
    different = (i % n) != (j % n)
    impostor = model.similarity(emb[i[different]], emb[j[different]])
    assert len(genuine) == 6 and len(impostor) == 60
    auc = roc_auc_score(np.r_[np.ones(len(genuine)), np.zeros(len(impostor))], np.r_[genuine, impostor])
    assert auc >= 0.95, (spec, auc, genuine.round(3), impostor.max().round(3))
