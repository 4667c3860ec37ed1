"""Exported face embedders (ONNX or TorchScript) described by a small YAML model spec.

``--model path/to/mynet.yaml``::

    name: mynet                 # optional; default: the spec file's stem
    format: onnx                # onnx | torchscript
    file: mynet.onnx            # relative to the spec file
    sha256: 3f1c...             # optional: refuse a weights file that changed
    input_size: 112             # square side, or [height, width]
    layout: NCHW                # NCHW (default) | NHWC: what the network takes
    colour_order: RGB           # RGB | BGR: channel order the network was trained on
    normalisation:              # network input = (pixel - mean) / std, pixels 0..255
      mean: 127.5               # one number or one per channel (in colour_order)
      std: 127.5
    alignment: arcface          # arcface: YuNet's 5 landmarks -> the ArcFace template scaled to
                                #   input_size; none: the whole image resized (already-cropped faces)
    similarity: cosine          # cosine | neg_l2 (negative Euclidean distance)

Unknown keys are errors (a typo must not silently fall back to a default). ``version`` is the
weights' sha256 plus a hash of the spec, so changing any preprocessing field re-embeds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from faceaudit.core.config import FileMessages, format_validation_error, load_yaml
from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.models.base import AlignedRecognizer
from faceaudit.models.detect import FaceDetector, default_detector
from faceaudit.models.runtime import file_sha256

SPEC_SUFFIXES = (".yaml", ".yml")


class Normalisation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mean: Union[float, list[float]] = 0.0
    std: Union[float, list[float]] = 1.0

    @field_validator("mean", "std")
    @classmethod
    def _three(cls, v):
        if isinstance(v, list) and len(v) != 3:
            raise ValueError("give one number or three (one per channel)")
        return v

    @field_validator("std")
    @classmethod
    def _nonzero(cls, v):
        if any(x == 0 for x in (v if isinstance(v, list) else [v])):
            raise ValueError("std must not be 0")
        return v


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Optional[str] = None
    format: Literal["onnx", "torchscript"]
    file: str
    sha256: Optional[str] = None
    input_size: Union[int, list[int]]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    colour_order: Literal["RGB", "BGR"] = "RGB"
    normalisation: Normalisation = Normalisation()
    alignment: Literal["arcface", "none"] = "arcface"
    similarity: Literal["cosine", "neg_l2"] = "cosine"

    @field_validator("input_size")
    @classmethod
    def _size(cls, v):
        hw = [v, v] if isinstance(v, int) else v
        if len(hw) != 2 or any(x < 8 or x > 2048 for x in hw):
            raise ValueError("input_size: one side or [height, width], each 8..2048")
        return hw


#: how a model spec file that cannot be read is reported (a directory is "not found" as a file)
_SPEC_FILE = FileMessages(
    missing="model spec {path}: file not found",
    directory="model spec {path}: file not found",
    not_utf8="model spec {path}: not UTF-8 text (byte {byte}); save the spec as UTF-8",
    unreadable="model spec {path}: cannot read it: {reason}",
)


def load_spec(path: str | os.PathLike) -> ModelSpec:
    """Parse and validate a model spec file; every problem is a one-line BadInput."""
    path = Path(path)
    data = load_yaml(path, "model spec", _SPEC_FILE, where=f"model spec {path}")
    if not isinstance(data, dict):
        raise BadInput(f"model spec {path}: expected a YAML mapping")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as err:
        raise BadInput(format_validation_error(err, f"model spec {path}")) from None


class _OnnxRunner:
    def __init__(self, path: Path, device: str):
        from faceaudit.models.onnx import make_session, prepare_onnx_model

        model_bytes, self.input_name, self.input_shape = prepare_onnx_model(path)
        self.session, self.device = make_session(model_bytes, device)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)


class _TorchScriptRunner:
    def __init__(self, path: Path, device: str):
        import torch

        from faceaudit.models.runtime import torch_device, use_fp16

        self.device = torch_device(device)
        self.fp16 = use_fp16(self.device)
        try:
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as err:  # RuntimeError for a non-TorchScript file, ValueError, ...
            raise ModelUnavailable(f"torchscript: cannot load {path}: {type(err).__name__}: {str(err).splitlines()[0]}") from None
        if self.fp16:
            self.module = self.module.half()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            out = self.module(t.half() if self.fp16 else t)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy()


class ExportedRecognizer(AlignedRecognizer):
    """An ONNX or TorchScript embedder run as its model spec says."""

    batch_size = 32

    def __init__(self, spec_path: str | os.PathLike, device: str = "auto", detector: FaceDetector | None = None,
                 name: Optional[str] = None):
        self.spec_path = Path(spec_path)
        self.spec = load_spec(self.spec_path)
        weights = Path(self.spec.file)
        self.weights_path = weights if weights.is_absolute() else self.spec_path.parent / weights
        if not self.weights_path.is_file():
            raise ModelUnavailable(f"model spec {self.spec_path}: file {self.weights_path} not found")
        digest = file_sha256(str(self.weights_path))
        if self.spec.sha256 and digest != self.spec.sha256.lower():
            raise ModelUnavailable(f"model spec {self.spec_path}: {self.weights_path} has sha256 {digest}, "
                                   f"the spec expects {self.spec.sha256}")
        runner_cls = _OnnxRunner if self.spec.format == "onnx" else _TorchScriptRunner
        self.runner = runner_cls(self.weights_path, device)
        self.device = self.runner.device
        self.height, self.width = self.spec.input_size
        self.mean = np.asarray(self.spec.normalisation.mean, dtype=np.float32)
        self.std = np.asarray(self.spec.normalisation.std, dtype=np.float32)
        self.detector = (detector or default_detector()) if self.spec.alignment == "arcface" else None
        self.name = name or self.spec.name or self.spec_path.stem
        spec_hash = hashlib.sha256(json.dumps(self.spec.model_dump(exclude={"name"}), sort_keys=True).encode()).hexdigest()
        self.version = f"{self.spec.format}-{digest[:12]}-spec{spec_hash[:8]}" + ("-fp16" if getattr(self.runner, "fp16", False) else "")
        self.embedding_dim = int(self.runner(self.to_input(np.zeros((1, self.height, self.width, 3), np.uint8))).reshape(1, -1).shape[1])

    # ---- preprocessing -------------------------------------------------------------------
    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        from faceaudit.models.align import align_112

        crops = np.zeros((len(images), self.height, self.width, 3), dtype=np.uint8)
        found = np.zeros(len(images), dtype=bool)
        for i, image in enumerate(images):
            image = np.ascontiguousarray(image)
            if self.detector is None:
                crops[i] = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                found[i] = True
                continue
            det = self.detector.detect(image)
            if det is None:
                continue
            if self.height != self.width:
                raise BadInput(f"model spec {self.spec_path}: alignment 'arcface' needs a square input_size")
            crops[i] = align_112(image, det.landmarks, size=self.height)
            found[i] = True
        return crops, found

    def to_input(self, crops: np.ndarray) -> np.ndarray:
        """RGB uint8 crops [N, H, W, 3] -> the network's float32 input."""
        x = crops[..., ::-1] if self.spec.colour_order == "BGR" else crops
        x = (x.astype(np.float32) - self.mean) / self.std
        if self.spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return self.runner(self.to_input(crops)).reshape(len(crops), -1)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.spec.similarity == "neg_l2":
            return -np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)
        return super().similarity(a, b)

    def metadata(self) -> dict[str, Any]:
        s = self.spec
        return {
            **super().metadata(),
            "architecture": f"{s.format} network (user supplied, {self.spec_path.name})",
            "source": str(self.weights_path),
            "input_size": f"{self.height}x{self.width} {s.colour_order} {s.layout}",
            "normalisation": f"(pixel - {self.mean.ravel().tolist()}) / {self.std.ravel().tolist()}",
            "alignment": ("YuNet 5 landmarks -> ArcFace template scaled to the input size" if s.alignment == "arcface"
                          else "none (whole image resized)"),
            "similarity": s.similarity,
            "runtime": "onnxruntime" if s.format == "onnx" else "torch.jit",
            "device": self.device,
        }
