"""InsightFace ArcFace-class recognizers from a model pack (``insightface`` = ``buffalo_l``;
``insightface:antelopev2``, ``insightface:buffalo_s``, ...).

The pack is looked up on disk (:mod:`faceaudit.models.packs`: ``$FACEAUDIT_MODELS/<pack>``, then
InsightFace's own ``$INSIGHTFACE_HOME/models/<pack>``); an audit never downloads it. Offline, a
missing pack is one line naming the pack, the folder searched and the command that fetches it.

The recognition ONNX runs with onnxruntime through
:class:`~faceaudit.models.onnx.OnnxRecognizer` with InsightFace's ``model_zoo`` conventions
(``insightface.model_zoo.ArcFaceONNX``): the standard five-point alignment to 112x112, RGB, and
``(x - 127.5) / 127.5`` -- except for networks converted from MXNet, whose first nodes already
subtract and scale (a ``Sub`` and a ``Mul`` among the first eight nodes), which take raw 0..255
pixels (mean 0, std 1). The insightface package itself is not installed: it is an sdist with a
compiled extension and a long dependency list (albumentations, scikit-image, ...) that an audit does
not need; the rule above is the only part of ``model_zoo`` a recognition network uses.

The weights are released for non-commercial research use only (InsightFace model zoo licence).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from faceaudit.models.detect import FaceDetector
from faceaudit.models.onnx import OnnxRecognizer
from faceaudit.models.packs import DEFAULT_PACK, LICENSE, get_pack, require_recognition_onnx

PACK = DEFAULT_PACK
MODEL_FILE = get_pack(DEFAULT_PACK).recognition
PACK_URL = get_pack(DEFAULT_PACK).url


def model_zoo_normalisation(path: str | os.PathLike) -> tuple[float, float]:
    """``(mean, std)`` by ``insightface.model_zoo.ArcFaceONNX``'s rule (module docstring)."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node[:8]
    find_sub = any(n.name.startswith(("Sub", "_minus")) for n in nodes)
    find_mul = any(n.name.startswith(("Mul", "_mul")) for n in nodes)
    return (0.0, 1.0) if (find_sub and find_mul) else (127.5, 127.5)


class InsightFaceRecognizer(OnnxRecognizer):
    batch_size = 32

    def __init__(
        self,
        device: str = "auto",
        root: str | os.PathLike | None = None,
        url: Optional[str] = None,
        detector: FaceDetector | None = None,
        pack: str = DEFAULT_PACK,
    ):
        self.pack = get_pack(pack)
        path = require_recognition_onnx(pack, root, url)
        mean, std = model_zoo_normalisation(path)
        name = "insightface" if pack == DEFAULT_PACK else f"insightface:{pack}"
        super().__init__(path, device=device, name=name, mean=mean, std=std, channel_order="RGB", detector=detector)
        self.version = f"{pack}-{self.version}"

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": self.pack.architecture,
            "training_data": f"{self.pack.training_data} (InsightFace {self.pack.name} pack)",
            "license": LICENSE,
            "source": self.pack.url,
            "weights": str(Path(self.path)),
            "alignment": "YuNet 5 landmarks -> standard ArcFace 112x112 template (insightface norm_crop)",
        }
