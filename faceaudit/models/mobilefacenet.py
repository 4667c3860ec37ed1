"""``mobilefacenet``: the ArcFace-style MobileFaceNet of npm ``faceplugin-face-recognition-js@0.0.1``.

The ONNX file (``package/model/fr_feature.onnx``, fetched and sha256-checked by
:mod:`faceaudit.models.faceplugin`) is a MobileFaceNet (depthwise-separable bottlenecks with PReLU,
a 7x7 global depthwise conv, a linear 512-d projection; exported from PyTorch 1.10, opset 9). It
takes 112x112 crops aligned to the ArcFace five-point template -- the template the package's own
``lib/fr_feature.js`` warps to -- normalised as ``(pixel - 127) / 128``, and returns a 512-d
embedding, compared by cosine as for ArcFace-trained networks.

Colour order: **BGR**. The package's JavaScript feeds the RGB channels of a canvas, but on real
photographs the network separates identities better when fed BGR (docs/models.md has the numbers):
it was most likely trained on OpenCV-decoded images.

The package does not say what the network was trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceaudit.models import faceplugin
from faceaudit.models.detect import FaceDetector
from faceaudit.models.onnx import OnnxRecognizer


class MobileFaceNetRecognizer(OnnxRecognizer):
    """faceplugin's MobileFaceNet on YuNet-aligned 112x112 crops, onnxruntime; unit-norm 512-d output.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    detector : FaceDetector, optional
        Face detector; default the shared YuNet detector.
    weights_dir : Path, optional
        Folder holding ``fr_feature.onnx``; default :func:`faceaudit.models.faceplugin.models_dir`.

    Examples
    --------
    >>> from faceaudit.models.registry import load_model
    >>> model = load_model("mobilefacenet", device="cpu")  # doctest: +SKIP
    >>> emb, status = model.embed([face_rgb_uint8])  # doctest: +SKIP
    """

    batch_size = 32

    def __init__(self, device: str = "auto", detector: FaceDetector | None = None, weights_dir=None):
        super().__init__(
            faceplugin.weights_path(weights_dir),
            device=device,
            name="mobilefacenet",
            mean=127.0,
            std=128.0,
            channel_order="BGR",
            detector=detector,
        )
        self.version = f"faceplugin-{faceplugin.VERSION}-{self.version}-l2"

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        # ArcFace convention: the feature is compared by angle, so it is returned on the unit sphere
        # (cosine similarity is unchanged; Euclidean distances become comparable across faces).
        out = super().embed_crops(crops)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, np.float32(1e-12))

    def metadata(self) -> dict[str, Any]:
        source = faceplugin.provenance()
        return {
            **super().metadata(),
            "architecture": "MobileFaceNet: depthwise-separable bottlenecks with PReLU, global depthwise conv, "
                            "512-d linear embedding (ArcFace-style)",
            "training_data": "not stated by the package",
            "license": source["license"],
            "source": f"{source['package']}@{source['package_version']} ({source['repository']})",
            "weights": f"{source['file']} sha256 {source['sha256']}",
            "package": source["package"],
            "package_version": source["package_version"],
            "weights_file": source["file"],
            "weights_sha256": source["sha256"],
            "normalisation": "BGR (chosen on real photographs; the package's JavaScript feeds RGB), (pixel - 127) / 128",
            "similarity": "cosine of the L2-normalised embedding",
        }
