"""Device selection and weight-file helpers shared by the model backends."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.core.hashing import sha256_file_cached

DEVICES = ("auto", "cpu", "cuda")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise BadInput(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    return device


def check_device_present(device: str) -> str:
    """Refuse a device this machine does not have, before anything is written for it.

    ``cuda`` needs a GPU that torch sees (the generators and most adapters run on torch); ``auto``
    and ``cpu`` always pass. A run's protocol records its device, so a command that changes it
    checks it first: otherwise RUN/protocol.yaml would say ``cuda`` for a stage that then fails.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``cuda``.

    Returns
    -------
    str
        ``device``, unchanged.

    Examples
    --------
    >>> check_device_present("cpu")
    'cpu'
    >>> check_device_present("tpu")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: device: expected one of auto, cpu, cuda, got 'tpu'
    """
    check_device(device)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BadInput("device: cuda requested but torch sees no GPU")
    return device


def torch_device(device: str = "auto") -> str:
    """``cuda`` when asked for (or ``auto``) and torch sees a GPU, else ``cpu``."""
    import torch

    check_device(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("device: cuda requested but torch sees no GPU")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def ort_providers(device: str = "auto") -> tuple[list[str], str]:
    """onnxruntime execution providers for ``device`` and the device they amount to."""
    import onnxruntime as ort

    check_device(device)
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise BadInput("device: cuda requested but onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
    if device in ("auto", "cuda") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
    return ["CPUExecutionProvider"], "cpu"


def ort_session_options():
    """onnxruntime ``SessionOptions`` shared by the onnxruntime backends: quiet logs, and intra-op
    worker threads that sleep between forward passes instead of spinning.

    By default onnxruntime's workers busy-wait for the next parallel op; the recognizers call
    ``run`` once per batch with YuNet detection (single-threaded, OpenCV) in between, so a worker
    spun at 100% of a core for the whole embed stage: bench_embed.py measured 1.39 s of CPU for
    0.70 s of mobileface's bare loop on 2 cores, 0.5 s of it spinning. That core is then missing
    to the harness's reader thread and to other processes; without spinning the forward passes
    are no slower (measured in benchmarks/bench_embed.py --ort-spinning, docs/models.md).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the repaired/traced graphs trigger harmless 'unused initializer' warnings
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def torch_onnx_session(net, input_shape: tuple[int, ...], device: str = "cpu"):
    """An onnxruntime session (:func:`ort_session_options`) running a float32 torch module: ``net``
    traced once with ``torch.onnx.export`` into memory, one input ``image`` of ``input_shape`` with
    a free batch dimension, one output ``embedding``.

    Why: on this project's 2-core CPU, PyTorch's own kernels (OpenMP workers that wait actively at
    each barrier) slow down 5-13x when other processes hold the cores, onnxruntime's sleeping
    workers 2-4x; at low load onnxruntime is also ~1.3x faster on the Inception-ResNet (FaceNet).
    Outputs agree within ~1e-6 (docs/models.md).

    Parameters
    ----------
    net : torch.nn.Module
        The network in eval mode, float32, taking one tensor.
    input_shape : tuple of int
        The input's shape for one example (``[1, C, H, W]``); the first dimension is left free.
    device : str
        ``cpu`` or ``cuda`` (onnxruntime's execution provider).

    Returns
    -------
    onnxruntime.InferenceSession

    Examples
    --------
    >>> import numpy as np, torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()).eval()
    >>> session = torch_onnx_session(net, (1, 3, 5, 5))
    >>> x = np.ones((2, 3, 5, 5), dtype=np.float32)
    >>> with torch.no_grad():
    ...     bool(np.allclose(session.run(None, {"image": x})[0], net(torch.from_numpy(x)).numpy(), atol=1e-6))
    True
    """
    import io
    import warnings

    import onnxruntime as ort
    import torch

    buf = io.BytesIO()
    example = torch.zeros(*input_shape, dtype=torch.float32, device=next(net.parameters()).device)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices; shapes are static
        torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["embedding"], dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}})
    providers, _ = ort_providers(device)
    return ort.InferenceSession(buf.getvalue(), ort_session_options(), providers=providers)


def package_file(package: str, relative: str, install_hint: str) -> Path:
    """A data file inside an installed package, located WITHOUT importing the package (some weight
    packages import ``pkg_resources`` at import time, which modern setuptools no longer ships)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{package}: package is not installed ({install_hint})")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ModelUnavailable(f"{package}: file {relative} is missing from the installed package ({path})")
    return path


def file_sha256(path: str) -> str:
    """SHA-256 of a weight file, cached by path, size and modification time (core.hashing)."""
    return sha256_file_cached(path)


def download(url: str, dest: str | Path, what: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` (atomically: a partial file never sits at ``dest``).

    Any network failure becomes a one-line ModelUnavailable naming ``what`` and the URL, so an
    offline user learns which file to fetch by hand and where to put it.
    """
    import os
    import shutil
    import tempfile
    import urllib.error
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "faceaudit"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ModelUnavailable(
            f"{what}: cannot download {url} ({type(err).__name__}: {reason}); "
            f"download it by hand and place it at {dest}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


# ---------------------------------------------------------------------------------------------
# GPU readiness (unproven on this project's CPU-only build machine; docs/models.md, "GPUs")

#: ``FACEAUDIT_FP16=1`` runs the PyTorch networks in half precision on CUDA (never on the CPU)
FP16_ENV = "FACEAUDIT_FP16"


def use_fp16(device: str) -> bool:
    import os

    return device == "cuda" and os.getenv(FP16_ENV, "0") not in ("", "0", "false", "no")


def cuda_batch_size(bytes_per_image: int, default: int, fraction: float = 0.5, cap: int = 1024) -> int:
    """Images per batch whose activations fit in ``fraction`` of the GPU's *free* memory
    (``torch.cuda.mem_get_info``), between ``default`` and ``cap``; ``default`` without CUDA.

    ``bytes_per_image`` is the adapter's estimate of its peak activation memory per image (float32);
    the GPU's other tenants are respected because only free memory counts.
    """
    try:
        import torch

        if not torch.cuda.is_available():
            return default
        free, _total = torch.cuda.mem_get_info()
    except Exception:  # no driver, MIG without access, ...: the safe default
        return default
    fit = int(free * fraction // max(bytes_per_image, 1))
    return int(max(default, min(cap, fit)))
