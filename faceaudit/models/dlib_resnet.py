"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``) re-implemented in PyTorch.

Why a port: the dlib wheel available here is built without BLAS and needs ~0.2 s per face on CPU;
the same arithmetic in PyTorch is an order of magnitude faster and runs on CUDA. The weights are
read from dlib's own file by :mod:`faceaudit.models.dlib_format`; the test suite checks that the
port reproduces ``dlib.face_recognition_model_v1.compute_face_descriptor`` on generated faces.

Network (dlib ``tools/python/src/face_recognition.cpp``): a 29-conv ResNet-34 variant with half
the filters, frozen batch norm as per-channel affine layers, 150x150 RGB input with the per-channel
mean subtracted and divided by 256, global average pooling and a 128-d linear projection (no
normalisation: dlib compares descriptors by Euclidean distance, threshold 0.6).

Preprocessing, matching dlib's documented pipeline except for the detector:
1. upscale the image (bicubic) so its short side is at least 256 px (our faces are 64x64);
2. detect the face with YuNet (dlib's HOG detector misses ~25% of our 64x64 faces even upscaled)
   and turn YuNet's box into the square, slightly lower box dlib's HOG detector would draw
   (fitted on faces both detectors find), because dlib's landmark model was trained on HOG boxes;
3. dlib's 5-point shape predictor, then ``dlib.get_face_chip(img, shape, size=150, padding=0.25)``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceaudit.core.errors import ModelUnavailable
from faceaudit.models.base import AlignedRecognizer
from faceaudit.models.detect import Detection, FaceDetector, default_detector
from faceaudit.models.dlib_format import DlibFormatError, FaceResnetWeights, load_face_resnet
from faceaudit.models.runtime import file_sha256, package_file, torch_device, torch_onnx_session

# defined beside the .dat parser, which imports no torch, so checking availability stays cheap
from faceaudit.models.dlib_format import INSTALL_HINT, SHAPE_PREDICTOR_FILE, WEIGHTS_FILE  # noqa: E402
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: short side the image is upscaled to before detection and landmarking
WORK_SIDE = 256
#: YuNet box -> dlib HOG-style box: side = BOX_SIDE * YuNet height, centre moved down by
#: BOX_SHIFT * YuNet height. Fitted on 48 generated faces found by both detectors
#: (HOG width / YuNet height = 0.82 +- 0.10, centre offset 0.068 +- 0.05 heights).
BOX_SIDE = 0.82
BOX_SHIFT = 0.068
#: bump when any preprocessing step changes: it is part of ``version`` and so of the cache key
PREPROCESS_VERSION = 2


def _affine(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(beta, x, gamma)


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the output takes the larger size in every dimension; missing elements of
    the smaller tensor count as zero (a strided conv on an even map is one pixel smaller than the
    2x2 average-pooled shortcut, and the shortcut has fewer channels)."""
    if a.shape == b.shape:
        return a + b
    c = max(a.shape[1], b.shape[1])
    h = max(a.shape[2], b.shape[2])
    w = max(a.shape[3], b.shape[3])

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Conv(nn.Module):
    def __init__(self, p: dict[str, Any]):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(p["weight"])), requires_grad=False)
        bias = p["bias"]
        self.bias = None if bias is None else nn.Parameter(torch.from_numpy(bias.copy()), requires_grad=False)
        self.stride = tuple(p["stride"])
        self.padding = tuple(p["padding"])
        if p.get("fused_relu"):
            raise DlibFormatError("con layers with a fused relu are not supported")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class _Affine(nn.Module):
    def __init__(self, p: dict[str, Any]):
        super().__init__()
        if p["disabled"]:
            raise DlibFormatError("disabled affine layers are not supported")
        self.gamma = nn.Parameter(torch.from_numpy(p["gamma"].reshape(1, -1, 1, 1).copy()), requires_grad=False)
        self.beta = nn.Parameter(torch.from_numpy(p["beta"].reshape(1, -1, 1, 1).copy()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _affine(x, self.gamma, self.beta)


class _ResidualUnit(nn.Module):
    """relu(shortcut + affine(conv(relu(affine(conv(x)))))); shortcut = x or avg_pool2x2(x)."""

    def __init__(self, u: dict[str, Any]):
        super().__init__()
        self.con1, self.aff1 = _Conv(u["con1"]), _Affine(u["aff1"])
        self.con2, self.aff2 = _Conv(u["con2"]), _Affine(u["aff2"])
        self.pool = u["pool"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.aff1(self.con1(x)))
        y = self.aff2(self.con2(y))
        if self.pool is None:
            return torch.relu(x + y)
        s = F.avg_pool2d(x, self.pool["size"], self.pool["stride"], self.pool["padding"])
        return torch.relu(_add_zero_padded(s, y))


class DlibFaceResNet(nn.Module):
    """The forward pass of dlib's face network: [N, 3, 150, 150] normalised RGB -> [N, 128]."""

    def __init__(self, w: FaceResnetWeights):
        super().__init__()
        self.stem_con = _Conv(w.stem["con"])
        self.stem_aff = _Affine(w.stem["aff"])
        pool = w.stem["pool"]
        self.pool_args = (pool["size"], pool["stride"], pool["padding"])
        self.units = nn.ModuleList(_ResidualUnit(u) for u in w.units)
        self.fc = nn.Parameter(torch.from_numpy(np.ascontiguousarray(w.fc_weight)), requires_grad=False)
        self.register_buffer("avg_rgb", torch.tensor(w.avg_rgb, dtype=torch.float32).view(1, 3, 1, 1))

    def normalise(self, chips_uint8: torch.Tensor) -> torch.Tensor:
        """[N, H, W, 3] uint8 RGB -> [N, 3, H, W] float, as dlib's input_rgb_image_sized does."""
        x = chips_uint8.permute(0, 3, 1, 2).float()
        return (x - self.avg_rgb) / 256.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_aff(self.stem_con(x)))
        x = F.max_pool2d(x, *self.pool_args)
        for unit in self.units:
            x = unit(x)
        x = x.mean(dim=(2, 3))
        return x @ self.fc


def hog_style_rectangle(det: Detection):
    """YuNet detection -> the square ``dlib.rectangle`` dlib's landmark model expects."""
    import dlib

    x, y, w, h = det.box
    side = BOX_SIDE * h
    cx = x + w / 2.0
    cy = y + h / 2.0 + BOX_SHIFT * h
    left = int(round(cx - side / 2))
    top = int(round(cy - side / 2))
    size = int(round(side))
    return dlib.rectangle(left, top, left + size - 1, top + size - 1)


class DlibResNetRecognizer(AlignedRecognizer):
    """dlib's ResNet descriptor, ported to PyTorch, behind the FaceRecognizer interface."""

    name = "dlib"
    embedding_dim = 128
    batch_size = 32

    def __init__(self, device: str = "auto", detector: FaceDetector | None = None, runtime: str = "auto"):
        if runtime not in ("auto", "onnxruntime", "torch"):
            raise ValueError(f"dlib: runtime must be auto, onnxruntime or torch, not {runtime!r}")
        try:
            import dlib
        except ImportError as err:  # pragma: no cover - dlib-bin is a hard dependency
            raise ModelUnavailable(f"dlib: the dlib package is needed for landmarks and chips ({err})") from None
        self.weights_path = package_file("face_recognition_models", WEIGHTS_FILE, INSTALL_HINT)
        self.shape_predictor_path = package_file("face_recognition_models", SHAPE_PREDICTOR_FILE, INSTALL_HINT)
        try:
            weights = load_face_resnet(self.weights_path)
        except DlibFormatError as err:
            raise ModelUnavailable(f"dlib: cannot parse {self.weights_path}: {err}") from None
        self.device = torch_device(device)
        self.net = DlibFaceResNet(weights).eval().to(self.device)
        # On the CPU the port runs on onnxruntime (traced once, in memory): with other processes on
        # the cores PyTorch's OpenMP workers slowed it 13x, onnxruntime's 4x
        # (runtime.torch_onnx_session); the outputs agree within ~1e-6. ``runtime="torch"`` keeps PyTorch.
        self.runtime = ("torch" if self.device == "cuda" else "onnxruntime") if runtime == "auto" else runtime
        self.session = (torch_onnx_session(self.net, (1, 3, CHIP_SIZE, CHIP_SIZE), self.device)
                        if self.runtime == "onnxruntime" else None)
        self.shape_predictor = dlib.shape_predictor(str(self.shape_predictor_path))
        self.detector = detector or default_detector()
        digest = file_sha256(str(self.weights_path))[:12]
        self.version = f"resnet_v1-{digest}-pre{PREPROCESS_VERSION}"

    # ---- preprocessing -------------------------------------------------------------------
    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Face chips exactly as dlib makes them: ``([N, 150, 150, 3] uint8, found bool [N])``;
        chips of faces not found are zero."""
        import dlib

        chips = np.zeros((len(images), CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
        found = np.zeros(len(images), dtype=bool)
        for i, image in enumerate(images):
            image = np.asarray(image)
            short = min(image.shape[:2])
            factor = max(1, math.ceil(WORK_SIDE / short))
            work = image
            if factor > 1:
                work = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            work = np.ascontiguousarray(work)
            # Detect on the original pixels (the shared detector remembers them, so SFace reuses
            # this detection) and map the box into the upscaled working image.
            det = self.detector.detect(image)
            if det is None:
                continue
            det = det.scaled(float(factor))
            shape = self.shape_predictor(work, hog_style_rectangle(det))
            chips[i] = dlib.get_face_chip(work, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            found[i] = True
        return chips, found

    @torch.inference_mode()
    def embed_crops(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors of aligned 150x150 RGB chips: ``[N, 128]`` float32."""
        if len(chips) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        t = torch.from_numpy(np.ascontiguousarray(chips)).to(self.device)
        if self.session is not None:
            return self.session.run(None, {"image": self.net.normalise(t).cpu().numpy()})[0]
        return self.net(self.net.normalise(t)).float().cpu().numpy()


    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Negative Euclidean distance: dlib's descriptors are meant for distance (same person
        below 0.6), so higher = more similar and the model's native threshold maps to -0.6."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        return -np.linalg.norm(a - b, axis=1)

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "ResNet (29 conv layers, ResNet-34 style with half the filters), 128-d metric embedding",
            "training_data": "about 3 million faces of ~7485 identities (FaceScrub, VGG-Face and web images), per dlib",
            "license": "weights: CC0 1.0 (public domain, per dlib); port: faceaudit (MIT)",
            "source": "http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2 via face_recognition_models",
            "weights": str(self.weights_path),
            "input_size": f"{CHIP_SIZE}x{CHIP_SIZE} RGB",
            "alignment": "YuNet box -> dlib 5-point shape predictor -> dlib.get_face_chip(size=150, padding=0.25)",
            "similarity": "negative Euclidean distance (dlib's same-person threshold: distance 0.6)",
            "runtime": (f"PyTorch {torch.__version__} port of the dlib network"
                        + (", traced to ONNX, onnxruntime" if self.session is not None else "")),
            "device": self.device,
        }
