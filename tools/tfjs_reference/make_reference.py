"""Make tests/data/tfjs_reference.npz: outputs of the ORIGINAL TFJS graphs, run by @tensorflow/tfjs
under node, on fixed inputs. faceaudit's own runner is checked against them in
tests/test_models_tfjs.py (no node needed there).

    npm install --prefix /tmp/tfjsref @tensorflow/tfjs@4.22.0      # scratch dir outside the repo
    PYTHONPATH=. python tools/tfjs_reference/make_reference.py --node-modules /tmp/tfjsref/node_modules
    PYTHONPATH=. python tools/tfjs_reference/make_reference.py --node-modules /tmp/tfjsref/node_modules \
        --graphs facemesh --out tests/data/tfjs_reference_facemesh.npz

(facemesh has its own file so that adding it left the other graphs' reference untouched.)

Inputs per graph: crops of DCGAN faces (protocol seed 0, seeds 0..2) made by faceaudit's own
preprocessing (stored as uint8), plus one random tensor (numpy PCG64, seed stored) in the graph's
input range. The float32 graph input's sha256 is stored too, so the test feeds byte-identical input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from faceaudit.generate.dcgan.generator import DCGANGenerator
from faceaudit.measure.perceived import age_crop, gender_crop, gender_input
from faceaudit.models import human_models
from faceaudit.models.detect import default_detector
from faceaudit.models.facemesh import MESH_OUTPUT, SCORE_OUTPUT, mesh_crop, mesh_input
from faceaudit.models.faceres import AGE_BINS, DESCRIPTOR, P_MALE, FaceResRecognizer
from faceaudit.models.mobileface import MobileFaceRecognizer

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "tfjs_reference.npz"
SCRIPT = Path(__file__).resolve().parent / "run_tfjs.js"

#: graph -> (outputs, random range, random seed, number of faces)
GRAPHS = {
    "faceres": ([DESCRIPTOR, P_MALE, AGE_BINS], (0.0, 255.0), 11, 2),
    "mobileface": (["batchnorm0/add_1"], (0.0, 255.0), 12, 3),
    "gender": (["Identity"], (-1.0, 1.0), 13, 3),
    "age": (["Identity"], (0.0, 255.0), 14, 3),
    "facemesh": ([MESH_OUTPUT, SCORE_OUTPUT], (0.0, 1.0), 15, 3),
}


def graph_input(name: str, crops: np.ndarray, seed: int, low: float, high: float) -> np.ndarray:
    """What the graph is fed: the crops as the model wrappers convert them, then a random tensor."""
    if name == "gender":
        x = gender_input(crops)
    elif name == "facemesh":
        x = mesh_input(crops)
    else:
        x = crops.astype(np.float32)
    noise = np.random.default_rng(seed).uniform(low, high, (1, *x.shape[1:])).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([x, noise]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-modules", required=True, help="folder holding @tensorflow/tfjs")
    ap.add_argument("--graphs", nargs="+", default=[g for g in GRAPHS if g != "facemesh"], choices=list(GRAPHS))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    generator = DCGANGenerator(protocol_seed=0, device="cpu")
    faces = generator.render_latents(generator.latents([0, 1, 2]))
    dets = [default_detector().detect(f) for f in faces]
    assert all(d is not None for d in dets)
    make_crops = {  # only the requested graphs' crops (the recognizers take a while to load)
        "faceres": lambda: FaceResRecognizer(device="cpu").align(list(faces))[0],
        "mobileface": lambda: MobileFaceRecognizer(device="cpu").align(list(faces))[0],
        "gender": lambda: np.stack([gender_crop(f, d) for f, d in zip(faces, dets)]),
        "age": lambda: np.stack([age_crop(f, d) for f, d in zip(faces, dets)]),
        "facemesh": lambda: np.stack([mesh_crop(f, d.box) for f, d in zip(faces, dets)]),
    }
    crops = {name: make_crops[name]() for name in args.graphs}
    data: dict[str, np.ndarray] = {}
    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.graphs:
            outputs, (low, high), seed, n = GRAPHS[name]
            c = crops[name][:n]
            x = graph_input(name, c, seed, low, high)
            x.tofile(Path(tmp) / f"{name}.in.f32")
            jobs.append({"model": name, "input": f"{name}.in.f32", "shape": list(x.shape), "outputs": outputs})
            data[f"{name}.crops"] = c
            data[f"{name}.random"] = np.array([seed, low, high])
            data[f"{name}.input_sha256"] = np.array(hashlib.sha256(x.tobytes()).hexdigest())
            data[f"{name}.outputs"] = np.array(outputs)
        (Path(tmp) / "jobs.json").write_text(json.dumps(jobs))
        env = {**os.environ, "NODE_PATH": args.node_modules}
        subprocess.run(["node", str(SCRIPT), str(human_models.models_dir()), tmp], check=True, env=env)
        results = json.loads((Path(tmp) / "results.json").read_text())
        for job in results["jobs"]:
            for i, shape in enumerate(job["shapes"]):
                data[f"{job['model']}.out{i}"] = np.fromfile(Path(tmp) / f"{job['model']}.{i}.out.f32", dtype=np.float32).reshape(shape)
    data["tfjs"] = np.array(f"@tensorflow/tfjs {results['tfjs_version']} backend={results['backend']}")
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB): {data['tfjs']}")


if __name__ == "__main__":
    main()
