"""Shared part of the recognizers that run a human-models TFJS graph (faceres, mobileface).

Align (YuNet five landmarks -> similarity transform onto a template of the network's input size)
then one batched forward pass. Inputs are RGB 0..255 floats, NHWC, exactly what human.js feeds
these graphs (any normalisation happens inside the graph). Embeddings are compared by cosine.

The forward pass runs on onnxruntime: :meth:`TfjsGraph.to_onnx` traces faceaudit's interpreter once
and the ONNX bytes are cached next to the fetched files (``onnx/``), keyed by the weights' sha256
and the runner version. ``runtime="torch"`` runs the interpreter directly (the reference path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from faceaudit.core.errors import BadInput
from faceaudit.models import human_models
from faceaudit.models.align import align_loose, mirror_averaged_landmarks
from faceaudit.models.base import AlignedRecognizer
from faceaudit.models.detect import FaceDetector, default_detector
from faceaudit.models.runtime import ort_providers, ort_session_options, torch_device
from faceaudit.models.tfjs_graph import RUNNER_VERSION, TfjsGraph


def onnx_session(graph: TfjsGraph, weights: Path, outputs: Sequence[str], input_size: int, device: str = "auto"):
    """An onnxruntime session for ``graph`` (``(session, device)``). The traced ONNX model is
    cached next to the weights (``onnx/``; tracing faceres takes ~5 s), keyed by the weights'
    sha256, the runner version, the input size and the outputs; written atomically, and skipped
    when that folder is read-only."""
    import hashlib
    import os

    import onnxruntime as ort

    channels = graph.inputs[graph.input_name][-1]
    key = hashlib.sha256("|".join(outputs).encode()).hexdigest()[:8]
    digest = human_models.FILES.get(weights.name, "")[:12] or hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    path = weights.parent / "onnx" / f"{weights.stem}-{digest}-r{RUNNER_VERSION}-{input_size}-{key}.onnx"
    if path.is_file():
        data = path.read_bytes()
    else:
        data = graph.to_onnx(outputs, [1, input_size, input_size, channels])
        try:
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            pass
    providers, resolved = ort_providers(device)
    return ort.InferenceSession(data, ort_session_options(), providers=providers), resolved


class TfjsRecognizer(AlignedRecognizer):
    """Subclasses set ``graph_name`` (file stem in human-models), ``output`` (descriptor node),
    ``input_size``, ``face_fraction`` (template scale, see :func:`align_loose`) and metadata."""

    graph_name = ""
    output = ""
    input_size = 112
    face_fraction = 1.0
    #: every output the ONNX export keeps (the descriptor first)
    heads: tuple[str, ...] = ()
    #: bump when preprocessing changes (part of ``version``, hence of the embedding cache key)
    preprocess_version = 1
    #: average YuNet's landmarks with those found on the mirrored image before aligning (costs a
    #: second detection; for tight-crop networks that are sensitive to landmark jitter)
    mirror_landmarks = False
    batch_size = 32

    def __init__(self, device: str = "auto", detector: FaceDetector | None = None, runtime: str = "onnxruntime"):
        if runtime not in ("onnxruntime", "torch"):
            raise BadInput(f"{self.name}: runtime must be onnxruntime or torch, got {runtime!r}")
        model_json, weights = human_models.model_files(self.graph_name)
        self.runtime = runtime
        self.heads = self.heads or (self.output,)
        self.graph = TfjsGraph.load(model_json)
        self.session = None
        if runtime == "torch":
            self.device = torch_device(device)
            self.graph.to(self.device)
        else:
            self.session, self.device = onnx_session(self.graph, weights, self.heads, self.input_size, device)
        self.detector = detector or default_detector()
        digest = human_models.FILES[weights.name][:12]
        self.version = f"human-models-{human_models.VERSION}-{digest}-r{RUNNER_VERSION}-pre{self.preprocess_version}"

    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        s = self.input_size

        def crop(image: np.ndarray, det) -> np.ndarray:
            landmarks = det.landmarks
            if self.mirror_landmarks:
                mirrored = self.detector.detect(np.ascontiguousarray(image[:, ::-1]))
                landmarks = mirror_averaged_landmarks(landmarks, None if mirrored is None else mirrored.landmarks, image.shape[1])
            return align_loose(image, landmarks, s, self.face_fraction)

        return self.detect_and_crop(images, (s, s), crop)

    def run_graph(self, crops: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph's ``outputs`` for uint8 RGB crops ``[N, S, S, 3]``; NaN output is BadInput."""
        x = np.ascontiguousarray(crops, dtype=np.float32)
        if self.session is None:
            result = self.graph.run(x, outputs)
        else:
            values = self.session.run(list(outputs), {self.graph.input_name: x})
            result = dict(zip(outputs, values))
        for name, value in result.items():
            if not np.isfinite(value).all():
                raise BadInput(f"{self.name}: the network returned NaN or inf at {name!r}")
        return result

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return self.run_graph(crops, [self.output])[self.output].reshape(len(crops), -1)

    def alignment_description(self) -> str:
        landmarks = "YuNet 5 landmarks"
        if self.mirror_landmarks:
            landmarks += " (averaged with those found on the horizontally mirrored image)"
        text = f"{landmarks} -> similarity transform onto the ArcFace template scaled to {self.input_size} px"
        if self.face_fraction != 1.0:
            text += f" and shrunk to {self.face_fraction:g} of its size (loose crop)"
        return text

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "license": f"MIT ({human_models.SPEC}); converter: faceaudit (MIT)",
            "weights": human_models.provenance(self.graph_name),
            "input_size": f"{self.input_size}x{self.input_size} RGB, values 0..255",
            "alignment": self.alignment_description(),
            "similarity": "cosine",
            "runtime": (
                f"faceaudit TFJS graph runner, traced to ONNX, onnxruntime (PyTorch {torch.__version__} for the trace)"
                if self.session is not None
                else f"faceaudit TFJS graph runner on PyTorch {torch.__version__}"
            ),
            "device": self.device,
        }
