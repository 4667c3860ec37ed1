"""FaceNet: Inception-ResNet-v1 trained on VGGFace2 (Schroff et al. 2015; weights converted from
David Sandberg's TensorFlow release by the facenet-pytorch project).

The network is defined here (our own module) with the parameter names of facenet-pytorch's
``InceptionResnetV1`` so that its published state dict loads directly; we do not depend on the
facenet-pytorch package (it pins old torch versions). Weights: ``FACENET_URL``, cached under
``$TORCH_HOME/checkpoints`` like facenet-pytorch does, or any local file via ``weights=``.

Preprocessing: YuNet landmarks, similarity alignment to the ArcFace template scaled to 160x160
(facenet-pytorch crops an MTCNN box with a margin instead; alignment is the documented
difference), RGB, ``(pixel - 127.5) / 128``; embeddings are L2-normalised, compared by cosine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceaudit.core.errors import ModelUnavailable
from faceaudit.models.align import align_112
from faceaudit.models.base import AlignedRecognizer
from faceaudit.models.detect import FaceDetector, default_detector
from faceaudit.models.runtime import cuda_batch_size, download, file_sha256, torch_device, use_fp16

FACENET_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
INPUT_SIZE = 160
PREPROCESS_VERSION = 1


class ConvBN(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3, TensorFlow's) -> relu; names match facenet-pytorch."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


def _chain(*specs) -> nn.Sequential:
    return nn.Sequential(*(ConvBN(*s) for s in specs))


class ResidualInception(nn.Module):
    """x + scale * conv1x1(concat(branches(x))), then relu (except the very last block)."""

    def __init__(self, width: int, branches: list[nn.Module], mixed: int, scale: float, relu: bool = True):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(f"branch{i}", b)
        self.n_branches = len(branches)
        self.conv2d = nn.Conv2d(mixed, width, 1)
        self.scale = scale
        self.use_relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n_branches)], 1)
        y = x + self.scale * self.conv2d(y)
        return torch.relu(y) if self.use_relu else y


def _block35(scale: float) -> ResidualInception:
    return ResidualInception(
        256,
        [ConvBN(256, 32, 1), _chain((256, 32, 1), (32, 32, 3, 1, 1)), _chain((256, 32, 1), (32, 32, 3, 1, 1), (32, 32, 3, 1, 1))],
        96,
        scale,
    )


def _block17(scale: float) -> ResidualInception:
    return ResidualInception(
        896,
        [ConvBN(896, 128, 1), _chain((896, 128, 1), (128, 128, (1, 7), 1, (0, 3)), (128, 128, (7, 1), 1, (3, 0)))],
        256,
        scale,
    )


def _block8(scale: float, relu: bool = True) -> ResidualInception:
    return ResidualInception(
        1792,
        [ConvBN(1792, 192, 1), _chain((1792, 192, 1), (192, 192, (1, 3), 1, (0, 1)), (192, 192, (3, 1), 1, (1, 0)))],
        384,
        scale,
        relu,
    )


class Reduction(nn.Module):
    """Parallel stride-2 branches concatenated (Inception 'mixed_6a' / 'mixed_7a')."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(f"branch{i}", b)
        self.n_branches = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n_branches)], 1)


class InceptionResnetV1(nn.Module):
    """[N, 3, 160, 160] standardised RGB -> [N, 512] L2-normalised embeddings."""

    def __init__(self):
        super().__init__()
        self.conv2d_1a = ConvBN(3, 32, 3, 2)
        self.conv2d_2a = ConvBN(32, 32, 3, 1)
        self.conv2d_2b = ConvBN(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = ConvBN(64, 80, 1)
        self.conv2d_4a = ConvBN(80, 192, 3)
        self.conv2d_4b = ConvBN(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*(_block35(0.17) for _ in range(5)))
        self.mixed_6a = Reduction(
            [ConvBN(256, 384, 3, 2), _chain((256, 192, 1), (192, 192, 3, 1, 1), (192, 256, 3, 2)), nn.MaxPool2d(3, 2)]
        )
        self.repeat_2 = nn.Sequential(*(_block17(0.10) for _ in range(10)))
        self.mixed_7a = Reduction(
            [
                _chain((896, 256, 1), (256, 384, 3, 2)),
                _chain((896, 256, 1), (256, 256, 3, 2)),
                _chain((896, 256, 1), (256, 256, 3, 1, 1), (256, 256, 3, 2)),
                nn.MaxPool2d(3, 2),
            ]
        )
        self.repeat_3 = nn.Sequential(*(_block8(0.20) for _ in range(5)))
        self.block8 = _block8(1.0, relu=False)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                      self.conv2d_4a, self.conv2d_4b, self.repeat_1, self.mixed_6a, self.repeat_2,
                      self.mixed_7a, self.repeat_3, self.block8):
            x = layer(x)
        x = self.last_bn(self.last_linear(x.mean(dim=(2, 3))))
        return F.normalize(x, p=2, dim=1)


def import_facenet_pytorch():
    """facenet-pytorch's ``inception_resnet_v1`` module, imported *without* torchvision.

    The package's ``__init__`` imports MTCNN, whose ``detect_face`` needs ``torchvision`` (for
    ``batched_nms`` and image resizing); torchvision does not load beside the local CPU torch. The
    network module itself needs only torch (and ``requests`` for its own downloader, unused here).
    So we register bare package objects for ``facenet_pytorch`` and ``facenet_pytorch.models`` that
    point at the installed folders (their ``__init__`` is never executed) and import the submodule
    through the normal machinery. Returns None when facenet-pytorch is not installed (install it
    with ``pip install --no-deps facenet-pytorch``: its requirements pin old torch/torchvision).
    """
    import importlib
    import importlib.util
    import sys
    import types

    name = "facenet_pytorch.models.inception_resnet_v1"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("facenet_pytorch") if "facenet_pytorch" not in sys.modules else None
    if "facenet_pytorch" not in sys.modules:
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(list(spec.submodule_search_locations)[0])
        for pkg, folder in (("facenet_pytorch", root), ("facenet_pytorch.models", root / "models")):
            module = types.ModuleType(pkg)
            module.__path__ = [str(folder)]
            module.__package__ = pkg
            sys.modules[pkg] = module
    return importlib.import_module(name)


def facenet_network() -> tuple[nn.Module, str]:
    """A fresh InceptionResnetV1 (eval mode) and where its definition came from: facenet-pytorch's
    own class when installed, else our module with the same parameter names and arithmetic."""
    module = import_facenet_pytorch()
    if module is not None:
        from importlib import metadata

        net = module.InceptionResnetV1(pretrained=None, classify=False)
        return net, f"facenet-pytorch {metadata.version('facenet-pytorch')}"
    return InceptionResnetV1(), "faceaudit.models.facenet.InceptionResnetV1"


def torch_home() -> Path:
    default = os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", default)))


def facenet_weights(weights: str | os.PathLike | None = None, url: str = FACENET_URL) -> Path:
    """A local weights file: ``weights`` if given, else the cached download of ``url``."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ModelUnavailable(f"facenet: weights file not found: {path}")
        return path
    cached = torch_home() / "checkpoints" / os.path.basename(url)
    if cached.is_file():
        return cached
    return download(url, cached, "facenet (InceptionResnetV1, VGGFace2)")


class FaceNetRecognizer(AlignedRecognizer):
    name = "facenet"
    embedding_dim = 512
    batch_size = 32

    def __init__(
        self,
        device: str = "auto",
        weights: str | os.PathLike | None = None,
        url: str = FACENET_URL,
        detector: FaceDetector | None = None,
    ):
        self.weights_path = facenet_weights(weights, url)
        try:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle/zip errors vary by torch version
            raise ModelUnavailable(f"facenet: cannot read {self.weights_path}: {type(err).__name__}: {err}") from None
        # The release includes the VGGFace2 classifier head ('logits.*'), unused for embeddings.
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        net, self.network_source = facenet_network()
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ModelUnavailable(f"facenet: {self.weights_path} does not match InceptionResnetV1: {first}") from None
        self.device = torch_device(device)
        self.fp16 = use_fp16(self.device)
        self.net = net.eval().to(self.device)
        if self.fp16:
            self.net = self.net.half()
        # 25 MB per 160x160 face: a generous estimate, not a measurement (its largest feature map is
        # 64x77x77 floats, 1.5 MB; inference keeps only a few maps alive at once)
        self.batch_size = cuda_batch_size(25 << 20, type(self).batch_size) if self.device == "cuda" else type(self).batch_size
        self.detector = detector or default_detector()
        self.version = f"vggface2-{file_sha256(str(self.weights_path))[:12]}-pre{PREPROCESS_VERSION}" + ("-fp16" if self.fp16 else "")

    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.detect_and_crop(images, (INPUT_SIZE, INPUT_SIZE),
                                    lambda image, det: align_112(image, det.landmarks, size=INPUT_SIZE))

    @torch.inference_mode()
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float()
        x = (x - 127.5) / 128.0
        return self.net(x.half() if self.fp16 else x).float().cpu().numpy()


    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "Inception-ResNet-v1, 512-d L2-normalised embedding",
            "training_data": "VGGFace2 (3.3M images, 9131 identities)",
            "license": "MIT (facenet / facenet-pytorch weights)",
            "source": FACENET_URL,
            "weights": str(self.weights_path),
            "input_size": f"{INPUT_SIZE}x{INPUT_SIZE} RGB, (x - 127.5) / 128",
            "alignment": "YuNet 5 landmarks -> similarity transform to the ArcFace template scaled to 160x160",
            "device": self.device,
            "network_code": self.network_source,
            "precision": "fp16" if self.fp16 else "fp32",
        }
