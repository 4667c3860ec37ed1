"""Make tests/data/tfjs_reference.npz: outputs of the ORIGINAL TFJS graphs, run by @tensorflow/tfjs
under node, on fixed inputs. faceaudit's own runner is checked against them in
tests/test_models_tfjs.py (no node needed there).

    npm install --prefix /tmp/tfjsref @tensorflow/tfjs@4.22.0      # scratch dir outside the repo
    PYTHONPATH=. python tools/tfjs_reference/make_reference.py --node-modules /tmp/tfjsref/node_modules

``--only gear`` (re)makes one graph's entries and keeps the others already in the file (the gear
entries were added this way, with @tensorflow/tfjs 4.22.0, after the first four). facemesh has a
file of its own, so that adding it left the other graphs' reference untouched:

    PYTHONPATH=. python tools/tfjs_reference/make_reference.py --node-modules /tmp/tfjsref/node_modules \
        --only facemesh --out tests/data/tfjs_reference_facemesh.npz

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
from faceaudit.measure import gear
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
    "gear": (gear.OUTPUTS, (0.0, 1.0), 15, 3),
    "facemesh": ([MESH_OUTPUT, SCORE_OUTPUT], (0.0, 1.0), 15, 3),
}
#: graphs whose reference lives in a file of their own (made with --only NAME --out FILE)
OWN_FILE = {"facemesh"}


def graph_input(name: str, crops: np.ndarray, seed: int, low: float, high: float) -> np.ndarray:
    """What the graph is fed: the crops as the model wrappers convert them, then a random tensor."""
    if name == "gender":
        x = gender_input(crops)
    elif name == "gear":
        x = gear.gear_input(crops)
    elif name == "facemesh":
        x = mesh_input(crops)
    else:
        x = crops.astype(np.float32)
    noise = np.random.default_rng(seed).uniform(low, high, (1, *x.shape[1:])).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([x, noise]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-modules", required=True, help="folder holding @tensorflow/tfjs")
    ap.add_argument("--only", choices=sorted(GRAPHS), help="remake this graph's entries, keep the rest of the file")
    ap.add_argument("--out", type=Path, default=OUT, help="the .npz to write (default: tests/data/tfjs_reference.npz)")
    args = ap.parse_args()
    graphs = {args.only: GRAPHS[args.only]} if args.only else {k: v for k, v in GRAPHS.items() if k not in OWN_FILE}
    generator = DCGANGenerator(protocol_seed=0, device="cpu")
    faces = generator.render_latents(generator.latents([0, 1, 2]))
    dets = [default_detector().detect(f) for f in faces]
    assert all(d is not None for d in dets)
    crop_makers = {
        "faceres": lambda: FaceResRecognizer(device="cpu").align(list(faces))[0],
        "mobileface": lambda: MobileFaceRecognizer(device="cpu").align(list(faces))[0],
        "gender": lambda: np.stack([gender_crop(f, d) for f, d in zip(faces, dets)]),
        "age": lambda: np.stack([age_crop(f, d) for f, d in zip(faces, dets)]),
        "gear": lambda: np.stack([gear.gear_crop(f, d) for f, d in zip(faces, dets)]),
        "facemesh": lambda: np.stack([mesh_crop(f, d.box) for f, d in zip(faces, dets)]),
    }
    crops = {name: crop_makers[name]() for name in graphs}
    data: dict[str, np.ndarray] = {}
    if args.only and args.out.exists():
        with np.load(args.out) as old:
            data = {k: old[k] for k in old.files if not k.startswith(f"{args.only}.")}
    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (outputs, (low, high), seed, n) in graphs.items():
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
    made_with = f"@tensorflow/tfjs {results['tfjs_version']} backend={results['backend']}"
    if args.only and "tfjs" in data and str(data["tfjs"]) != made_with:
        raise SystemExit(f"--only {args.only}: the file was made with {data.get('tfjs')}, this run with {made_with}")
    data["tfjs"] = np.array(made_with)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB): {data['tfjs']}")


if __name__ == "__main__":
    main()
