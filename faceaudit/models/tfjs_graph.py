"""faceaudit's own TFJS graph-model runner: ``model.json`` + weight shards -> numpy -> PyTorch.

A TFJS *graph model* (``"format": "graph-model"``) is a TensorFlow GraphDef written as JSON
(``modelTopology.node``: name, op, inputs, attrs) plus a weights manifest that lays every ``Const``
tensor out in binary shards, optionally quantized (float16, or uint8/uint16 affine). This module
reads that format with numpy and interprets the graph with torch ops, keeping TensorFlow's NHWC
layout (convolutions see a channels-last view, so no copies are made). It implements the ops of
the human-models graphs faceaudit uses (faceres, mobileface, gender, age, facemesh) and raises
:class:`~faceaudit.core.errors.BadInput` naming any other op. There is no TensorFlow, tfjs or tf2onnx
here; the outputs are checked against ``@tensorflow/tfjs`` run under node (tests/data/tfjs_ref).

TensorFlow semantics reproduced where they differ from torch's defaults:
* ``SAME`` padding is asymmetric (the extra row/column goes at the bottom/right);
* ``AvgPool`` with ``SAME`` padding averages only the in-image cells;
* depthwise weights are ``[kh, kw, in, multiplier]`` with output channel ``c * multiplier + m``;
* ``_FusedConv2D`` / ``_FusedMatMul`` / ``FusedDepthwiseConv2dNative`` apply their ``fused_ops``
  list (``BiasAdd`` then an activation) in order;
* ``Prelu`` is ``x if x > 0 else alpha * x`` with a per-channel ``alpha`` (tfjs's ``prelu``; the
  converter names the alpha constant ``.../Neg`` but stores alpha itself).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from faceaudit.core.errors import BadInput

#: bump when any op's semantics change: part of the recognizers' versions and of cached ONNX names
RUNNER_VERSION = 3

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


# ---- reading the files --------------------------------------------------------------------------
def read_weights(manifest: list[dict], directory: Path, where: str) -> dict[str, np.ndarray]:
    """Decode every tensor of a TFJS ``weightsManifest`` (shards concatenated per group)."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        try:
            buf = b"".join((directory / p).read_bytes() for p in group["paths"])
        except OSError as err:
            raise BadInput(f"{where}: cannot read weight shard: {err}") from None
        offset = 0
        for spec in group["weights"]:
            name, shape, dtype = spec["name"], [int(d) for d in spec["shape"]], spec["dtype"]
            if dtype not in _DTYPES:
                raise BadInput(f"{where}: weight {name!r} has unsupported dtype {dtype!r}")
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = _QUANT.get(quant["dtype"]) if quant else _DTYPES[dtype]
            if stored is None:
                raise BadInput(f"{where}: weight {name!r} has unsupported quantization {quant!r}")
            nbytes = count * np.dtype(stored).itemsize
            if offset + nbytes > len(buf):
                raise BadInput(f"{where}: weight shards end before weight {name!r} (truncated file?)")
            raw = np.frombuffer(buf, dtype=stored, count=count, offset=offset)
            offset += nbytes
            if quant and quant["dtype"] in ("uint8", "uint16"):
                value = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            else:
                value = raw
            out[name] = np.asarray(value, dtype=_DTYPES[dtype]).reshape(shape)
        if offset != len(buf):
            raise BadInput(f"{where}: {len(buf) - offset} bytes of weight shards are not described by the manifest")
    return out


def _attr(node: dict, key: str, default: Any = None) -> Any:
    """Decode one GraphDef attr value (JSON protobuf form) to a Python value."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        if "f" in lst:
            return [float(v) for v in lst["f"]]
        return []
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    return default


def _source(name: str) -> str:
    """``node:0`` -> ``node``; control inputs (``^node``) are handled by the caller."""
    base, _, index = name.partition(":")
    if index not in ("", "0"):
        raise BadInput(f"tfjs graph: multi-output tensors are not supported ({name!r})")
    return base


# ---- the ops ------------------------------------------------------------------------------------
def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(node: dict, x: torch.Tensor, kh: int, kw: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for an NHWC ``x``."""
    padding = _attr(node, "padding", "VALID")
    strides = _attr(node, "strides", [1, 1, 1, 1])
    dil = _attr(node, "dilations", [1, 1, 1, 1])
    if padding == "VALID":
        return 0, 0, 0, 0
    if padding == "SAME":
        # int(): under the ONNX trace the padding must be a constant for the traced input size
        top, bottom = _same_pads(int(x.shape[1]), kh, strides[1], dil[1])
        left, right = _same_pads(int(x.shape[2]), kw, strides[2], dil[2])
        return top, bottom, left, right
    if padding == "EXPLICIT":
        p = _attr(node, "explicit_paddings", [])
        return p[2], p[3], p[4], p[5]
    raise BadInput(f"tfjs graph: node {node['name']!r}: unsupported padding {padding!r}")


def _check_nhwc(node: dict) -> None:
    fmt = _attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise BadInput(f"tfjs graph: node {node['name']!r}: data_format {fmt!r} is not supported (NHWC only)")


def _conv_nhwc(
    node: dict, x: torch.Tensor, w_oihw: torch.Tensor, kh: int, kw: int, groups: int, bias: torch.Tensor | None = None
) -> torch.Tensor:
    _check_nhwc(node)
    strides = _attr(node, "strides", [1, 1, 1, 1])
    dil = _attr(node, "dilations", [1, 1, 1, 1])
    top, bottom, left, right = _spatial_pads(node, x, kh, kw)
    xc = x.permute(0, 3, 1, 2)  # NCHW view of channels-last memory: no copy
    if top == bottom and left == right:
        pad: Any = (top, left)
    else:
        xc = F.pad(xc, (left, right, top, bottom))
        pad = 0
    y = F.conv2d(xc, w_oihw, bias, (strides[1], strides[2]), pad, (dil[1], dil[2]), groups)
    return y.permute(0, 2, 3, 1)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu,
    "Relu6": lambda t: t.clamp(0.0, 6.0),
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Elu": F.elu,
}


def _apply_fused(node: dict, y: torch.Tensor, extra: list[torch.Tensor]) -> torch.Tensor:
    ops = _attr(node, "fused_ops", [])
    args = list(extra)
    for op in ops:
        if op == "BiasAdd":
            y = y + args.pop(0)
        elif op in _ACTIVATIONS:
            y = _ACTIVATIONS[op](y)
        elif op == "LeakyRelu":
            y = F.leaky_relu(y, _attr(node, "leakyrelu_alpha", 0.2))
        elif op == "Prelu":
            alpha = args.pop(0)
            y = torch.where(y > 0, y, y * alpha)
        else:
            raise BadInput(f"tfjs graph: node {node['name']!r}: unsupported fused op {op!r}")
    return y


def _pool(node: dict, x: torch.Tensor, kind: str) -> torch.Tensor:
    _check_nhwc(node)
    k = _attr(node, "ksize", [1, 1, 1, 1])
    s = _attr(node, "strides", [1, 1, 1, 1])
    top, bottom, left, right = _spatial_pads(node, x, k[1], k[2])
    xc = x.permute(0, 3, 1, 2)
    if kind == "max":
        if top or bottom or left or right:
            xc = F.pad(xc, (left, right, top, bottom), value=float("-inf"))
        y = F.max_pool2d(xc, (k[1], k[2]), (s[1], s[2]))
    else:
        if top or bottom or left or right:
            # TF averages over the cells inside the image only
            ones = torch.ones_like(xc[:1, :1])
            num = F.avg_pool2d(F.pad(xc, (left, right, top, bottom)), (k[1], k[2]), (s[1], s[2]), divisor_override=1)
            den = F.avg_pool2d(F.pad(ones, (left, right, top, bottom)), (k[1], k[2]), (s[1], s[2]), divisor_override=1)
            y = num / den
        else:
            y = F.avg_pool2d(xc, (k[1], k[2]), (s[1], s[2]))
    return y.permute(0, 2, 3, 1)


def _strided_slice(node: dict, x: torch.Tensor, begin: list, end: list, strides: list) -> torch.Tensor:
    if _attr(node, "ellipsis_mask", 0) or _attr(node, "new_axis_mask", 0):
        raise BadInput(f"tfjs graph: node {node['name']!r}: StridedSlice ellipsis/new-axis masks are not supported")
    bmask, emask, smask = (_attr(node, k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
    index: list[Any] = []
    for i, (b, e, st) in enumerate(zip(begin, end, strides)):
        if smask >> i & 1:
            index.append(int(b))
            continue
        if st <= 0:
            raise BadInput(f"tfjs graph: node {node['name']!r}: StridedSlice with stride {st} is not supported")
        index.append(slice(None if bmask >> i & 1 else int(b), None if emask >> i & 1 else int(e), int(st)))
    return x[tuple(index)]


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


# ---- the graph ----------------------------------------------------------------------------------
@dataclass
class _Step:
    name: str
    op: str
    inputs: list[str]
    run: Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass
class TfjsGraph:
    """A loaded TFJS graph model. ``run({input: NHWC float32 array}, outputs)`` -> dict of arrays."""

    path: Path
    nodes: dict[str, dict]
    consts: dict[str, torch.Tensor]
    inputs: dict[str, list[int]]
    ops: set[str] = field(default_factory=set)
    device: str = "cpu"
    _plans: dict[tuple[str, ...], list[_Step]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, model_json: str | Path) -> "TfjsGraph":
        path = Path(model_json)
        where = f"tfjs graph {path}"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise BadInput(f"{where}: cannot read model.json: {type(err).__name__}: {err}") from None
        if not isinstance(doc, dict) or doc.get("format") != "graph-model" or "modelTopology" not in doc:
            raise BadInput(f"{where}: not a TFJS graph model (format {doc.get('format') if isinstance(doc, dict) else None!r})")
        weights = read_weights(doc.get("weightsManifest", []), path.parent, where)
        nodes: dict[str, dict] = {}
        consts: dict[str, torch.Tensor] = {}
        inputs: dict[str, list[int]] = {}
        for node in doc["modelTopology"].get("node", []):
            nodes[node["name"]] = node
            if node["op"] == "Const":
                if node["name"] not in weights:
                    raise BadInput(f"{where}: constant {node['name']!r} has no weights in the manifest")
                value = weights[node["name"]]
                consts[node["name"]] = torch.from_numpy(value.astype(np.int64) if value.dtype == np.int32 else value.copy())
            elif node["op"] == "Placeholder":
                dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
                inputs[node["name"]] = [int(d.get("size", -1)) for d in dims]
        unsupported = sorted({n["op"] for n in nodes.values()} - set(_OPS) - {"Const", "Placeholder"})
        if unsupported:
            raise BadInput(f"{where}: ops not implemented by faceaudit's TFJS runner: {', '.join(unsupported)}")
        return cls(path=path, nodes=nodes, consts=consts, inputs=inputs, ops={n["op"] for n in nodes.values()})

    @property
    def input_name(self) -> str:
        if len(self.inputs) != 1:
            raise BadInput(f"tfjs graph {self.path}: expected one input, found {sorted(self.inputs)}")
        return next(iter(self.inputs))

    def _plan(self, outputs: tuple[str, ...]) -> list[_Step]:
        """Steps (topologically ordered, only what ``outputs`` need) with weights pre-converted."""
        if outputs in self._plans:
            return self._plans[outputs]
        order: list[str] = []
        state: dict[str, int] = {}
        for out in outputs:
            if out not in self.nodes:
                raise BadInput(f"tfjs graph {self.path}: no node named {out!r}")
            stack = [(out, False)]
            while stack:  # iterative DFS: graphs can be deeper than Python's recursion limit
                name, done = stack.pop()
                if done:
                    state[name] = 2
                    order.append(name)
                    continue
                if state.get(name):
                    continue
                state[name] = 1
                stack.append((name, True))
                for src in self.nodes[name].get("input", []):
                    if not src.startswith("^") and not state.get(_source(src)):
                        stack.append((_source(src), False))
        steps = []
        for name in order:
            node = self.nodes[name]
            if node["op"] in ("Const", "Placeholder"):
                continue
            srcs = [_source(s) for s in node.get("input", []) if not s.startswith("^")]
            steps.append(_Step(name, node["op"], srcs, _OPS[node["op"]](node, [self.consts.get(s) for s in srcs])))
        steps = self._fuse(steps, outputs)
        self._plans[outputs] = steps
        return steps

    def _fuse(self, steps: list[_Step], outputs: tuple[str, ...], allow_inplace: bool = True) -> list[_Step]:
        """Peephole rewrites that keep the arithmetic (every value rounds as in TF), but save
        memory passes: the elementwise tail of a conv layer was ~70% of faceres's time.

        * Conv2D/DepthwiseConv2dNative followed by its bias ``Add`` -> one conv with a bias;
        * ``Relu`` -> ``Minimum(c)`` -> ``Maximum(lo)`` (Keras ReLU6) -> one ``clamp(0, c)``;
        * elementwise ops on a tensor nobody else reads run in place.
        """
        consumers: dict[str, int] = {}
        for step in steps:
            for src in step.inputs:
                consumers[src] = consumers.get(src, 0) + 1
        for out in outputs:
            consumers[out] = consumers.get(out, 0) + 1
        by_input: dict[str, _Step] = {}
        for step in steps:
            if step.inputs and step.inputs[0] not in self.consts:
                by_input.setdefault(step.inputs[0], step)

        def sole_next(step: _Step) -> _Step | None:
            nxt = by_input.get(step.name)
            return nxt if consumers.get(step.name) == 1 and nxt is not None else None

        def scalar(name: str) -> float | None:
            c = self.consts.get(name)
            return float(c.reshape(-1)[0]) if c is not None and c.numel() == 1 and c.is_floating_point() else None

        alias = lambda a: a[0]  # noqa: E731 - the value passes through unchanged
        owned: set[str] = set()  # tensors freshly allocated by a step, safe to overwrite
        for step in steps:
            node = self.nodes[step.name]
            if step.op in ("Conv2D", "DepthwiseConv2dNative") and step.run is not alias:
                nxt = sole_next(step)
                bias = self.consts.get(nxt.inputs[1]) if nxt is not None and nxt.op in ("Add", "AddV2", "BiasAdd") else None
                w = self.consts[step.inputs[1]]
                c_out = w.shape[3] if step.op == "Conv2D" else w.shape[2] * w.shape[3]
                if bias is not None and bias.dim() == 1 and bias.shape[0] == c_out and bias.is_floating_point():
                    step.run = (_conv2d if step.op == "Conv2D" else _depthwise)(node, [None, w], bias)
                    nxt.run = alias
            elif step.op == "Relu":
                m = sole_next(step)
                big = sole_next(m) if m is not None and m.op == "Minimum" else None
                hi = scalar(m.inputs[1]) if big is not None else None
                lo = scalar(big.inputs[1]) if big is not None and big.op == "Maximum" else None
                if hi is not None and lo is not None and lo <= 0.0 <= hi:
                    inplace = allow_inplace and step.inputs[0] in owned and consumers.get(step.inputs[0]) == 1
                    step.run = (lambda a, hi=hi: a[0].clamp_(0.0, hi)) if inplace else (lambda a, hi=hi: a[0].clamp(0.0, hi))
                    m.run = big.run = alias
                    owned.add(step.name)
                    continue
            if step.run is alias:
                if step.inputs[0] in owned:
                    owned.add(step.name)
                continue
            if allow_inplace and step.op in _INPLACE and step.inputs[0] in owned and consumers.get(step.inputs[0]) == 1:
                other = self.consts.get(step.inputs[1]) if len(step.inputs) > 1 else None
                if len(step.inputs) == 1 or (other is not None and other.dim() <= 1 and other.is_floating_point()):
                    step.run = _inplace(step.op, step.run)
            if step.op not in _VIEW_OPS:
                owned.add(step.name)
        return steps

    def module(self, outputs: Sequence[str], device: str | None = None) -> torch.nn.Module:
        """The graph as a differentiable ``torch.nn.Module`` (NHWC input -> tuple of ``outputs``).

        The same rewrites as the interpreter minus in-place ops, so autograd and the ONNX tracer
        can record every value: a ReLU6 becomes one clamp. Used for the ONNX export and for
        gradients of a head with respect to its input (the gender head's latent gradient). ``device``
        moves a copy of the weights there (default: where the graph's weights are)."""
        if device is not None and device != self.device:
            # a copy whose weights (and the layouts converted from them) live on ``device``
            return replace(self, _plans={}).to(device).module(outputs)
        outputs = tuple(outputs)
        plain = self._fuse(
            [
                _Step(s.name, s.op, s.inputs, _OPS[s.op](self.nodes[s.name], [self.consts.get(i) for i in s.inputs]))
                for s in self._plan(outputs)
            ],
            outputs,
            allow_inplace=False,
        )
        consts = dict(self.consts)
        name = self.input_name

        class _Graph(torch.nn.Module):
            def forward(self, x: torch.Tensor):
                values = dict(consts)
                values[name] = x
                for step in plain:
                    values[step.name] = step.run([values[i] for i in step.inputs])
                return tuple(values[o] for o in outputs)

        return _Graph()

    def to_onnx(self, outputs: Sequence[str], input_shape: Sequence[int]) -> bytes:
        """The graph as an ONNX model (opset 17) with a free batch dimension, made by tracing this
        interpreter with ``torch.onnx.export`` for one input size (SAME padding is resolved for
        ``input_shape``). onnxruntime then fuses conv + bias + clip: faceres runs ~1.5-2x faster
        than the interpreter. Outputs keep their TFJS node names."""
        import io
        import warnings

        outputs = tuple(outputs)
        traced = self.module(outputs, device="cpu")  # traced on the CPU whatever device the graph is on
        name = self.input_name
        example = torch.zeros([1, *list(input_shape)[1:]], dtype=torch.float32)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints: shapes are fixed here
            torch.onnx.export(
                traced, (example,), buf, dynamo=False, opset_version=17, input_names=[name],
                output_names=list(outputs), dynamic_axes={name: {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
            )
        return buf.getvalue()

    def to(self, device: str) -> "TfjsGraph":
        """Move the weights to ``device`` (``cpu`` or ``cuda``); returns self."""
        self.consts = {k: v.to(device) for k, v in self.consts.items()}
        self.device = device
        self._plans.clear()  # plans hold converted weights
        return self

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray] | np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Evaluate ``outputs`` (node names) for the given inputs (NHWC float32, batch first)."""
        if not isinstance(feeds, dict):
            feeds = {self.input_name: feeds}
        outputs = tuple(outputs)
        values: dict[str, torch.Tensor] = dict(self.consts)
        for name, array in feeds.items():
            if name not in self.inputs:
                raise BadInput(f"tfjs graph {self.path}: no input named {name!r}")
            array = np.asarray(array, dtype=np.float32)
            if not np.isfinite(array).all():
                raise BadInput(f"tfjs graph {self.path}: input {name!r} holds NaN or inf")
            values[name] = torch.as_tensor(np.ascontiguousarray(array), device=self.device)
        for step in self._plan(outputs):
            values[step.name] = step.run([values[s] for s in step.inputs])
        return {name: values[name].float().cpu().numpy() for name in outputs}


# Each entry: (node, constant inputs or None) -> a function of the runtime inputs. Weight layout
# conversions happen once, here, not per batch.
def _conv2d(node, consts, bias=None):
    w = consts[1]
    if w is None:
        raise BadInput(f"tfjs graph: node {node['name']!r}: convolution weights must be constant")
    kh, kw = w.shape[0], w.shape[1]
    w_oihw = w.permute(3, 2, 0, 1).contiguous()
    fused = node["op"].startswith("_Fused")
    return lambda a: _apply_fused(node, _conv_nhwc(node, a[0], w_oihw, kh, kw, 1), a[2:]) if fused else _conv_nhwc(node, a[0], w_oihw, kh, kw, 1, bias)


def _depthwise(node, consts, bias=None):
    w = consts[1]
    if w is None:
        raise BadInput(f"tfjs graph: node {node['name']!r}: depthwise weights must be constant")
    kh, kw, cin, mult = w.shape
    w_oihw = w.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw).contiguous()
    fused = node["op"].startswith("Fused")
    return lambda a: _apply_fused(node, _conv_nhwc(node, a[0], w_oihw, kh, kw, cin), a[2:]) if fused else _conv_nhwc(node, a[0], w_oihw, kh, kw, cin, bias)


def _matmul(node, consts):
    ta, tb = _attr(node, "transpose_a", False), _attr(node, "transpose_b", False)
    fused = node["op"] == "_FusedMatMul"

    def run(a):
        x = a[0].transpose(-1, -2) if ta else a[0]
        w = a[1].transpose(-1, -2) if tb else a[1]
        y = x @ w
        return _apply_fused(node, y, a[2:]) if fused else y

    return run


def _reduce(fn):
    def make(node, consts):
        keep = _attr(node, "keep_dims", False)
        return lambda a: fn(a[0], dim=_ints(a[1]), keepdim=keep)

    return make


def _softmax(node, consts):
    return lambda a: torch.softmax(a[0], dim=-1)


def _reshape(node, consts):
    return lambda a: a[0].reshape(_ints(a[1]))


def _pad(node, consts):
    def run(a):
        p = _ints(a[1])  # [[before, after]] per dim, outermost first; F.pad wants innermost first
        flat = [v for i in reversed(range(len(p) // 2)) for v in (p[2 * i], p[2 * i + 1])]
        value = float(a[2].item()) if len(a) > 2 else 0.0
        return F.pad(a[0], flat, value=value)

    return run


def _expand_dims(node, consts):
    return lambda a: a[0].unsqueeze(_ints(a[1])[0])


def _squeeze(node, consts):
    dims = _attr(node, "squeeze_dims", [])
    return lambda a: a[0].squeeze(dims) if dims else a[0].squeeze()


def _prelu(node, consts):
    # torch.where, not F.prelu: F.prelu wants channels in dim 1 (NCHW); alpha broadcasts over NHWC's last dim
    return lambda a: torch.where(a[0] > 0, a[0], a[0] * a[1])


def _binary(fn):
    return lambda node, consts: (lambda a: fn(a[0], a[1]))


def _unary(fn):
    return lambda node, consts: (lambda a: fn(a[0]))


_VIEW_OPS = {"Identity", "Reshape", "ExpandDims", "Squeeze", "StridedSlice"}
_INPLACE_FNS: dict[str, Callable[..., torch.Tensor]] = {
    "Add": torch.Tensor.add_,
    "AddV2": torch.Tensor.add_,
    "BiasAdd": torch.Tensor.add_,
    "Sub": torch.Tensor.sub_,
    "Mul": torch.Tensor.mul_,
    "RealDiv": torch.Tensor.div_,
    "Maximum": torch.Tensor.clamp_min_,
    "Minimum": torch.Tensor.clamp_max_,
    "Relu": torch.Tensor.relu_,
    "Sigmoid": torch.Tensor.sigmoid_,
    "Tanh": torch.Tensor.tanh_,
}
_INPLACE = set(_INPLACE_FNS)


def _inplace(op: str, fallback: Callable[[list[torch.Tensor]], torch.Tensor]) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """``op`` overwriting its first input when broadcasting leaves that input's shape as it is."""
    fn = _INPLACE_FNS[op]

    def run(a: list[torch.Tensor]) -> torch.Tensor:
        x = a[0]
        if len(a) == 1:
            return fn(x)
        c = a[1]
        if c.numel() == 1 or (x.dim() >= 1 and c.shape[-1] == x.shape[-1]):
            return fn(x, c)
        return fallback(a)

    return run


_OPS: dict[str, Callable[[dict, list], Callable[[list[torch.Tensor]], torch.Tensor]]] = {
    "Conv2D": _conv2d,
    "_FusedConv2D": _conv2d,
    "DepthwiseConv2dNative": _depthwise,
    "FusedDepthwiseConv2dNative": _depthwise,
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "BiasAdd": _binary(torch.add),
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "RealDiv": _binary(torch.div),
    "Maximum": _binary(torch.maximum),
    "Minimum": _binary(torch.minimum),
    "Relu": _unary(torch.relu),
    "Relu6": _unary(lambda t: t.clamp(0.0, 6.0)),
    "Prelu": _prelu,
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "Identity": _unary(lambda t: t),
    "Softmax": _softmax,
    "Mean": _reduce(torch.mean),
    "Sum": _reduce(torch.sum),
    "Max": _reduce(lambda t, dim, keepdim: torch.amax(t, dim=dim, keepdim=keepdim)),
    "Reshape": _reshape,
    "Pad": _pad,
    "PadV2": _pad,
    "ExpandDims": _expand_dims,
    "Squeeze": _squeeze,
    "MaxPool": lambda node, consts: (lambda a: _pool(node, a[0], "max")),
    "AvgPool": lambda node, consts: (lambda a: _pool(node, a[0], "avg")),
    "StridedSlice": lambda node, consts: (lambda a: _strided_slice(node, a[0], _ints(a[1]), _ints(a[2]), _ints(a[3]))),
}
