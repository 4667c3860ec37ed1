"""Throughput of the embed harness against a bare loop over the same model, plus generation and
attribute measurement speed.

    python benchmarks/bench_embed.py [--n 64] [--models dlib sface] [--device auto]

For each model the harness (PNG read + hash + batching + cache writes + progress) is timed on a
fresh cache and compared with a loop that calls ``model.embed`` on the same in-memory images in
the same process; ``ratio`` = harness throughput / bare throughput (goal: >= 0.9). For ``dlib`` it
also times dlib's own C++ network on the same aligned chips, which is what the PyTorch port replaces.
``--ort-spinning`` also times the bare loop of the onnxruntime models (sface, faceres, mobileface, mobilefacenet,
and dlib and facenet, whose torch modules run traced on onnxruntime on the CPU) with onnxruntime's default
spinning workers against faceaudit's sleeping ones.

``--split RUN`` instead splits each model's cost on ``--n`` faces spread over a generated run (e.g. the default
audit's): YuNet detection once (the detector is shared and remembers its detections), each model's
alignment with those detections remembered, and its forward pass; and estimates each model's embed time on the
whole run from them. All models are timed in one process, in turns (``--repeat`` rounds, best of each), so
a busy machine slows them alike and the ratios to the first model stay comparable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceaudit.core.errors import ModelUnavailable  # noqa: E402
from faceaudit.harness.embed import embed_faces  # noqa: E402
from faceaudit.models.registry import load_model  # noqa: E402
from faceaudit.rundir import sha256_file  # noqa: E402


def render_faces(n: int, device: str) -> tuple[np.ndarray, float]:
    from faceaudit.generate.dcgan.generator import DCGANGenerator

    gen = DCGANGenerator(device=device)
    z = gen.latents(range(n))
    gen.render_latents(z[:8])  # warm-up
    t0 = time.perf_counter()
    images = gen.render_latents(z)
    return images, n / (time.perf_counter() - t0)


def write_run(root: Path, images: np.ndarray) -> pd.DataFrame:
    (root / "images").mkdir(parents=True)
    rows = []
    for i, img in enumerate(images):
        rel = f"images/face_{i:05d}.png"
        cv2.imwrite(str(root / rel), np.ascontiguousarray(img[:, :, ::-1]))
        rows.append({"face_id": f"f{i:05d}", "path": rel, "sha256": sha256_file(root / rel), "group": "skin=light"})
    return pd.DataFrame(rows)


def forget_detections(model) -> None:
    """The built-in recognizers share a detector that remembers detections by pixels; clear it so
    every timed run (bare or harness) detects afresh and neither gets the other's work for free."""
    detector = getattr(model, "detector", None)
    if detector is not None and hasattr(detector, "clear_memo"):
        detector.clear_memo()


def bare_loop(model, images: list[np.ndarray]) -> float:
    forget_detections(model)
    t0 = time.perf_counter()
    for start in range(0, len(images), model.batch_size):
        model.embed(images[start : start + model.batch_size])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="number of faces")
    ap.add_argument("--models", nargs="+", default=["dlib", "sface", "faceres", "mobileface", "mobilefacenet", "facenet"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=4, help="timings are the best of this many runs (shared machines are noisy)")
    ap.add_argument(
        "--ort-spinning",
        action="store_true",
        help="also time the bare loop of onnxruntime models with spinning intra-op workers (onnxruntime's default)",
    )
    ap.add_argument("--split", metavar="RUN", help="split each model's cost into detection, alignment and forward pass "
                    "on faces of this generated run (no harness comparison)")
    args = ap.parse_args(argv)
    if args.split:
        return split_costs(Path(args.split), args.n, args.models, args.device, args.repeat)

    images, gen_rate = render_faces(args.n, "cpu" if args.device == "auto" else args.device)
    image_list = list(images)
    rows = [("generation (DCGAN forward)", "-", f"{gen_rate:.1f}", "-", "-")]

    with tempfile.TemporaryDirectory(prefix="faceaudit-bench-") as tmp:
        tmp = Path(tmp)
        faces = write_run(tmp / "run", images)
        for spec in args.models:
            try:
                model = load_model(spec, device=args.device)
            except ModelUnavailable as err:  # e.g. human-models not fetched (offline setup)
                print(f"skipped {spec}: {err}")
                continue
            model.embed(image_list[: min(4, len(image_list))])  # warm-up (lazy init, allocator)
            t_bare = t_harness = float("inf")
            for rep in range(args.repeat):
                # Interleave and swap the order each round: on a shared machine the same loop
                # varies 3x between runs, and whichever runs first after a pause tends to be slower.
                cache = tmp / f"cache-{model.name}-{rep}"
                for which in ("bare", "harness") if rep % 2 == 0 else ("harness", "bare"):
                    if which == "bare":
                        t_bare = min(t_bare, bare_loop(model, image_list))
                    else:
                        forget_detections(model)
                        t0 = time.perf_counter()
                        out = embed_faces(model, faces, tmp / "run", cache_dir=cache, progress=False)
                        t_harness = min(t_harness, time.perf_counter() - t0)
            t1 = time.perf_counter()
            embed_faces(model, faces, tmp / "run", cache_dir=cache, progress=False)
            t_cached = time.perf_counter() - t1
            n_ok = int((out["status"] == "ok").sum())
            rows.append(
                (
                    f"embed {model.name} [{model.device}] ({n_ok}/{len(out)} ok)",
                    f"{args.n / t_bare:.1f}",
                    f"{args.n / t_harness:.1f}",
                    f"{t_bare / t_harness:.2f}",
                    f"{args.n / t_cached:.0f}",
                )
            )
            if spec == "dlib":
                rows.extend(dlib_native_rows(model, image_list))
            if args.ort_spinning and getattr(model, "session", None) is not None:
                rows.extend(ort_spinning_rows(model, image_list, args.n, args.repeat))

    try:
        from faceaudit.measure import measure_images
    except ImportError:
        print("note: faceaudit.measure is not available; attribute measurement not timed")
    else:
        measure_images(images[:4])
        t0 = time.perf_counter()
        measure_images(images)
        rows.append(("attribute measurement", "-", f"{args.n / (time.perf_counter() - t0):.1f}", "-", "-"))

    header = ("stage", "bare img/s", "harness img/s", "ratio", "cached img/s")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    print(f"faces: {args.n} (64x64 DCGAN)")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return 0


def split_costs(run: Path, n: int, specs: list[str], device: str, repeat: int) -> int:
    """Per image: detection (once), each model's alignment (detections remembered) and forward pass,
    on ``n`` faces spread over ``run``; the full-run estimate is (alignment + forward) x faces."""
    import os

    from faceaudit.harness.embed import read_image
    from faceaudit.models.detect import default_detector

    faces = pd.read_parquet(run / "faces.parquet")
    pick = np.linspace(0, len(faces) - 1, min(n, len(faces))).astype(int)
    images = [read_image(run / p)[0] for p in faces["path"].iloc[pick]]
    n = len(images)
    detector = default_detector()
    detector.clear_memo()
    t0 = time.perf_counter()
    for image in images:
        detector.detect(image)
    t_detect = (time.perf_counter() - t0) / n
    models, crops, t_align = {}, {}, {}
    for spec in specs:
        try:
            model = load_model(spec, device=device)
        except ModelUnavailable as err:
            print(f"skipped {spec}: {err}")
            continue
        model.embed(images[:4])  # warm-up
        t0 = time.perf_counter()
        parts = [model.align(images[s : s + model.batch_size]) for s in range(0, n, model.batch_size)]
        t_align[spec] = (time.perf_counter() - t0) / n
        crops[spec] = [c[f] for c, f in parts]
        models[spec] = model
    t_forward = {spec: float("inf") for spec in models}
    loads = []
    for rep in range(repeat):
        for spec in list(models) if rep % 2 == 0 else list(models)[::-1]:
            t0 = time.perf_counter()
            for c in crops[spec]:
                models[spec].embed_crops(c)
            t_forward[spec] = min(t_forward[spec], (time.perf_counter() - t0) / n)
        loads.append(os.getloadavg()[0])
    first = next(iter(models), None)
    print(f"faces: {n} of {len(faces)} in {run}; YuNet detection {1000 * t_detect:.2f} ms/img (once, shared: "
          f"~{len(faces) * t_detect:.0f} s for the run); load average {min(loads):.1f}-{max(loads):.1f}")
    header = ("model", "align ms/img", "forward ms/img", f"forward x {first}", "est. s for the run")
    rows = [(spec, f"{1000 * t_align[spec]:.2f}", f"{1000 * t_forward[spec]:.2f}",
             f"{t_forward[spec] / t_forward[first]:.2f}", f"{len(faces) * (t_align[spec] + t_forward[spec]):.0f}")
            for spec in models]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return 0


def ort_spinning_rows(model, images: list[np.ndarray], n: int, repeat: int) -> list[tuple]:
    """The bare loop with faceaudit's onnxruntime session (workers sleep between forward passes,
    ``runtime.ort_session_options``) against the same network with onnxruntime's default spinning
    workers; ``ratio`` = faceaudit's throughput / spinning throughput. Also the CPU seconds each
    burns: a spinning worker holds a core between batches, while detection runs."""
    import onnxruntime as ort

    shipped = model.session
    model_bytes = getattr(shipped, "_model_bytes", None) or Path(shipped._model_path).read_bytes()
    opts = ort.SessionOptions()  # onnxruntime's defaults: intra-op workers spin
    opts.log_severity_level = 3
    spinning = ort.InferenceSession(model_bytes, opts, providers=shipped.get_providers())
    best = {"sleep": (float("inf"), 0.0), "spin": (float("inf"), 0.0)}
    try:
        for rep in range(repeat):
            for which in ("sleep", "spin") if rep % 2 == 0 else ("spin", "sleep"):
                model.session = shipped if which == "sleep" else spinning
                model.embed(images[:4])
                c0 = time.process_time()
                wall = bare_loop(model, images)
                best[which] = min(best[which], (wall, time.process_time() - c0))
    finally:
        model.session = shipped
    (t_sleep, c_sleep), (t_spin, c_spin) = best["sleep"], best["spin"]
    return [
        (f"  bare, onnxruntime workers spinning (CPU {c_spin:.2f} s)", f"{n / t_spin:.1f}", "-", "-", "-"),
        (f"  bare, workers sleep (shipped; CPU {c_sleep:.2f} s)", f"{n / t_sleep:.1f}", "-", f"{t_spin / t_sleep:.2f}", "-"),
    ]


def dlib_native_rows(model, images: list[np.ndarray]) -> list[tuple]:
    """Per-image network time: dlib's own C++ implementation vs our PyTorch port, same chips."""
    import dlib

    chips, found = model.align(images)
    chips = chips[found]
    t0 = time.perf_counter()
    model.align(images)
    t_align = (time.perf_counter() - t0) / len(images)
    native = dlib.face_recognition_model_v1(str(model.weights_path))
    native.compute_face_descriptor(list(chips[:2]))
    t_native = t_port = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        native.compute_face_descriptor(list(chips))
        t_native = min(t_native, (time.perf_counter() - t0) / len(chips))
        t0 = time.perf_counter()
        for start in range(0, len(chips), model.batch_size):
            model.embed_crops(chips[start : start + model.batch_size])
        t_port = min(t_port, (time.perf_counter() - t0) / len(chips))
    return [
        ("  dlib network, native C++ (ms/img)", "-", f"{1000 * t_native:.1f}", "-", "-"),
        (f"  dlib network, our port on {getattr(model, 'runtime', 'torch')} [{model.device}] (ms/img)", "-", f"{1000 * t_port:.1f}", f"x{t_native / t_port:.1f}", "-"),
        ("  dlib detect+landmarks+chip (ms/img)", "-", f"{1000 * t_align:.1f}", "-", "-"),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
