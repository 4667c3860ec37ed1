"""Exported networks (ONNX via torch.onnx.export, TorchScript via torch.jit.save) described by a YAML
model spec: the adapter's embeddings equal the network run directly on the same crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import _faces
from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.models.base import STATUS_OK
from faceaudit.models.registry import check_model_spec, load_model

#: float32 network run two ways (onnxruntime or torch.jit vs eager torch): agreement we require
ATOL = 1e-4


class TinyEmbedder(nn.Module):
    """A small conv net with an asymmetric first layer, so channel order and layout mistakes show."""

    def __init__(self, dim: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.fc = nn.Linear(8, dim)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class NhwcEmbedder(TinyEmbedder):
    def forward(self, x):
        return super().forward(x.permute(0, 3, 1, 2))


def _spec(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def _direct(net: nn.Module, crops: np.ndarray, mean, std, bgr: bool, nchw: bool) -> np.ndarray:
    x = crops[..., ::-1] if bgr else crops
    x = (x.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    if nchw:
        x = x.transpose(0, 3, 1, 2)
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def test_onnx_export_with_arcface_alignment_matches_the_network(tmp_path):
    net = TinyEmbedder().eval()
    onnx_path = tmp_path / "tiny.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(onnx_path), input_names=["x"], output_names=["emb"],
                      dynamic_axes={"x": {0: "n"}, "emb": {0: "n"}}, dynamo=False)
    mean, std = [131.0, 120.0, 101.0], [60.0, 62.0, 64.0]
    spec = _spec(tmp_path / "tiny.yaml", format="onnx", file="tiny.onnx", input_size=112, colour_order="BGR",
                 normalisation={"mean": mean, "std": std}, alignment="arcface", similarity="cosine")
    assert check_model_spec(str(spec)) is None
    model = load_model(str(spec), device="cpu")
    assert model.name == "tiny" and model.embedding_dim == 16 and model.device == "cpu"
    images = list(_faces.faces(8)[:4])
    emb, status = model.embed(images)
    assert (status == STATUS_OK).all()
    crops, found = model.align(images)
    assert found.all() and crops.shape == (4, 112, 112, 3)
    want = _direct(net, crops, mean, std, bgr=True, nchw=True)
    assert np.abs(emb - want).max() < ATOL
    # channel order matters: the RGB reading of the same crops is a different embedding
    assert np.abs(emb - _direct(net, crops, mean, std, bgr=False, nchw=True)).max() > 100 * ATOL


def test_torchscript_nhwc_without_alignment_and_neg_l2(tmp_path):
    net = NhwcEmbedder().eval()
    ts_path = tmp_path / "nhwc.pt"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 96, 96, 3)), str(ts_path))
    spec = _spec(tmp_path / "nhwc.yml", name="my-nhwc", format="torchscript", file=str(ts_path), input_size=96,
                 layout="NHWC", normalisation={"mean": 127.5, "std": 128.0}, alignment="none", similarity="neg_l2")
    model = load_model(str(spec), device="cpu")
    assert model.name == "my-nhwc"
    images = list(_faces.faces(8)[:3])  # 64x64 faces, resized whole to 96x96
    emb, status = model.embed(images)
    assert (status == STATUS_OK).all()
    import cv2

    crops = np.stack([cv2.resize(im, (96, 96), interpolation=cv2.INTER_LINEAR) for im in images])
    want = _direct(net, crops, 127.5, 128.0, bgr=False, nchw=False)
    assert np.abs(emb - want).max() < ATOL
    sim = model.similarity(emb[:2], emb[1:3])
    assert np.allclose(sim, -np.linalg.norm(want[:2] - want[1:3], axis=1), atol=1e-3)
    assert (model.similarity(emb, emb) == 0).all()


def test_bad_specs_are_one_line_errors(tmp_path):
    net = TinyEmbedder().eval()
    ts_path = tmp_path / "t.pt"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 64, 64)), str(ts_path))
    unknown = _spec(tmp_path / "a.yaml", format="torchscript", file="t.pt", input_size=64, colour_ordr="RGB")
    msg = check_model_spec(str(unknown))
    assert "colour_ordr: unknown key" in msg and "\n" not in msg
    with pytest.raises(BadInput, match="unknown key"):
        load_model(str(unknown))
    assert "not found" in check_model_spec(str(tmp_path / "missing.yaml"))
    wrong_hash = _spec(tmp_path / "b.yaml", format="torchscript", file="t.pt", input_size=64, sha256="0" * 64)
    with pytest.raises(ModelUnavailable, match="sha256"):
        load_model(str(wrong_hash), device="cpu")
    not_ts = _spec(tmp_path / "c.yaml", format="torchscript", file="a.yaml", input_size=64)
    with pytest.raises(ModelUnavailable, match="cannot load"):
        load_model(str(not_ts), device="cpu")


def test_spec_files_are_read_as_utf8_with_one_line_errors(tmp_path):
    # the spec is read by the same loader as protocols and policies (faceaudit.core.config)
    (tmp_path / "café.yaml").write_bytes("name: café\nformat: onnx\nfile: x.onnx\ninput_size: 112\n".encode("utf-8"))
    assert check_model_spec(str(tmp_path / "café.yaml")) is None
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\nformat: onnx\nfile: x.onnx\ninput_size: 112\n".encode("latin-1"))
    assert check_model_spec(str(latin)) == f"model spec {latin}: not UTF-8 text (byte 9); save the spec as UTF-8"
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: onnx\n  file: [\n")
    assert check_model_spec(str(broken)).startswith(f"model spec {broken}: not valid YAML at line 2: ")
    (tmp_path / "folder.yaml").mkdir()
    assert check_model_spec(str(tmp_path / "folder.yaml")) == f"model spec {tmp_path / 'folder.yaml'}: file not found"
