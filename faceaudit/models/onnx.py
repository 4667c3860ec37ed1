"""Generic ArcFace-style ONNX recognizer (``--model onnx:/path/model.onnx``), run with onnxruntime.

Any ONNX network that takes a batch of aligned 112x112 face crops (NCHW, 3 channels) and returns
one embedding per face works. Faces are detected with YuNet, aligned to the ArcFace five-point
template with our own similarity transform, then normalised as ``(pixel - mean) / std`` in the
configured channel order (defaults: RGB, mean 127.5, std 127.5 -- the InsightFace convention).

``prepare_onnx_model`` also repairs files exported by older converters: weights listed as graph
inputs (onnxruntime then demands them as feeds), graph inputs nobody reads, and a batch dimension
frozen at 1. The fixed model is kept in memory; the file on disk is never changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.models.align import align_112
from faceaudit.models.base import AlignedRecognizer
from faceaudit.models.detect import FaceDetector, default_detector
from faceaudit.models.runtime import file_sha256, ort_providers, ort_session_options

#: bump when preprocessing changes (part of ``version``, hence of the embedding cache key)
PREPROCESS_VERSION = 2


#: ops whose output is a constant when all their inputs are: folded at load time
_FOLDABLE = {"DequantizeLinear", "Reshape", "Constant", "Cast", "Transpose", "Squeeze", "Unsqueeze", "Identity"}


def fold_constant_weights(model) -> int:
    """Replace weight-only subgraphs (e.g. int8 -> float DequantizeLinear of block-quantized files)
    by float initializers, in place; returns how many nodes were folded.

    onnxruntime deliberately keeps QDQ nodes, so a weight-quantized model otherwise dequantizes all
    its weights on every run and cannot fuse Conv+BatchNorm: SFace int8bq ran ~4x slower that way.
    """
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    const = {t.name for t in graph.initializer}
    folded = []
    for node in graph.node:
        if node.op_type in _FOLDABLE and node.domain in ("", "ai.onnx") and all(x in const for x in node.input if x):
            folded.append(node)
            const.update(node.output)
    if not folded:
        return 0
    outputs = [o for n in folded for o in n.output]
    sub = helper.make_graph(
        folded, "fold", [], [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
        list(graph.initializer),
    )
    # The reference evaluator implements only recent versions of some ops (DequantizeLinear >= 19);
    # the folded ops are backward compatible, so evaluate them under a recent opset.
    opsets = [helper.make_opsetid(o.domain, max(o.version, 21) if o.domain in ("", "ai.onnx") else o.version) for o in model.opset_import]
    values = ReferenceEvaluator(helper.make_model(sub, opset_imports=opsets)).run(None, {})
    folded_ids = {id(n) for n in folded}
    remaining = [n for n in graph.node if id(n) not in folded_ids]
    del graph.node[:]
    graph.node.extend(remaining)
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name=o) for o, v in zip(outputs, values))
    return len(folded)


def prepare_onnx_model(path: str | os.PathLike) -> tuple[bytes, str, list]:
    """Load ``path`` and make it runnable by onnxruntime with any batch size.

    Returns ``(serialized model, input name, input shape)``. Raises ModelUnavailable when the file
    is missing or not an ONNX model, BadInput when it has no single image input.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"onnx: model file not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, ValueError, ... depending on the damage
        raise ModelUnavailable(f"onnx: cannot read {path}: {type(err).__name__}: {err}") from None
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    consumed = {name for node in graph.node for name in node.input}
    consumed |= {o.name for o in graph.output}
    # Weights declared as inputs (IR < 4 style) would have to be fed by the caller, and inputs no
    # node reads are leftovers of the exporter; only real data inputs remain.
    data_inputs = [i for i in graph.input if i.name not in initializers and i.name in consumed]
    if len(data_inputs) != 1:
        names = [i.name for i in data_inputs]
        raise BadInput(f"onnx: {path}: expected exactly one image input, found {len(names)}: {names}")
    del graph.input[:]
    graph.input.extend(data_inputs)
    try:
        fold_constant_weights(model)
    except Exception as err:  # the reference evaluator lacks some rare op: run unfolded
        import warnings

        warnings.warn(f"onnx: {path}: constant folding skipped ({type(err).__name__}: {err})", stacklevel=2)
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    # Free the batch dimension so faces run in batches; intermediate shape annotations that pin
    # it to 1 are dropped and re-inferred by onnxruntime.
    inp = graph.input[0]  # extend() copied the message: edit the one in the graph
    dims = inp.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    if len(dims) == 4:
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "batch"
        for out in graph.output:
            odims = out.type.tensor_type.shape.dim
            if len(odims) >= 1:
                odims[0].ClearField("dim_value")
                odims[0].dim_param = "batch"
        del graph.value_info[:]
        free_output_reshape_batch(graph)
    return model.SerializeToString(), inp.name, shape


def free_output_reshape_batch(graph) -> int:
    """Let a final ``Reshape`` to a constant ``[1, ...]`` keep the batch size; returns how many
    were changed.

    Exports traced with batch 1 often end in ``Reshape(x, [1, -1])``: with a batch of N faces that
    gives one row of N * D numbers instead of N rows (faceplugin's MobileFaceNet does this). The
    shape's leading 1 becomes 0, which in ONNX means "copy this dimension from the input"; for a
    batch of one nothing changes. Only reshapes that produce a graph output are touched.
    """
    from onnx import numpy_helper

    outputs = {o.name for o in graph.output}
    initializers = {t.name: t for t in graph.initializer}
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.output[0] not in outputs or node.input[1] not in initializers:
            continue
        shape = numpy_helper.to_array(initializers[node.input[1]])
        if shape.ndim != 1 or len(shape) < 2 or shape[0] != 1:
            continue
        shape = shape.copy()
        shape[0] = 0
        name = f"{node.input[1]}_batch_free"  # a new initializer: the old one may be shared
        graph.initializer.append(numpy_helper.from_array(shape, name=name))
        node.input[1] = name
        changed += 1
    return changed


def make_session(model_bytes: bytes, device: str = "auto"):
    """An onnxruntime session on ``device``; returns ``(session, resolved device)``."""
    import onnxruntime as ort

    providers, resolved = ort_providers(device)
    return ort.InferenceSession(model_bytes, ort_session_options(), providers=providers), resolved


class OnnxRecognizer(AlignedRecognizer):
    """A 112x112 aligned-face ONNX recognizer run with onnxruntime."""

    batch_size = 32

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "auto",
        name: str | None = None,
        mean: float | Sequence[float] = 127.5,
        std: float | Sequence[float] = 127.5,
        channel_order: str = "RGB",
        detector: FaceDetector | None = None,
        info: dict[str, Any] | None = None,
    ):
        if channel_order not in ("RGB", "BGR"):
            raise BadInput(f"onnx: channel_order must be RGB or BGR, got {channel_order!r}")
        self.path = Path(path)
        model_bytes, self.input_name, self.input_shape = prepare_onnx_model(self.path)
        if len(self.input_shape) != 4 or self.input_shape[1] != 3:
            raise BadInput(f"onnx: {self.path}: expected an NCHW input with 3 channels, got shape {self.input_shape}")
        h, w = self.input_shape[2], self.input_shape[3]
        if isinstance(h, str) or isinstance(w, str):
            h = w = 112  # dynamic spatial size: use the ArcFace crop
        if h != w:
            raise BadInput(f"onnx: {self.path}: expected a square input, got {h}x{w}")
        self.input_size = int(h)
        self.session, self.device = make_session(model_bytes, device)
        out = self.session.get_outputs()[0]
        dim = out.shape[-1] if out.shape else None
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        self.channel_order = channel_order
        self.detector = detector or default_detector()
        self.name = name or f"onnx:{self.path}"
        digest = file_sha256(str(self.path))[:12]
        norm = f"{channel_order}-{self.mean.ravel().tolist()}-{self.std.ravel().tolist()}"
        self.version = f"{digest}-{norm}-pre{PREPROCESS_VERSION}".replace(" ", "")
        self.embedding_dim = int(dim) if isinstance(dim, int) else self._probe_dim()
        self.info = dict(info or {})

    def _probe_dim(self) -> int:
        x = np.zeros((1, 3, self.input_size, self.input_size), dtype=np.float32)
        return int(self.session.run(None, {self.input_name: x})[0].reshape(1, -1).shape[1])

    # ---- preprocessing -------------------------------------------------------------------
    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Aligned RGB crops ``[N, S, S, 3] uint8`` and ``found`` [N] (zero crops where not found)."""
        s = self.input_size
        return self.detect_and_crop(images, (s, s), lambda image, det: align_112(image, det.landmarks, size=s))

    def to_input(self, crops: np.ndarray) -> np.ndarray:
        x = crops if self.channel_order == "RGB" else crops[..., ::-1]
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)
        return (x - self.mean) / self.std

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        out = self.session.run(None, {self.input_name: self.to_input(crops)})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(crops), -1)


    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "ONNX network (user supplied)",
            "source": str(self.path),
            "input_size": f"{self.input_size}x{self.input_size} {self.channel_order}",
            "normalisation": f"(pixel - {self.mean.ravel().tolist()}) / {self.std.ravel().tolist()}",
            "alignment": "YuNet 5 landmarks -> similarity transform to the ArcFace 112x112 template",
            "runtime": "onnxruntime",
            "device": self.device,
            **self.info,
        }
