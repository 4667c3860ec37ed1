"""Throughput of the diffusion generator: CPU fp32 as the baseline, CUDA fp16 where a GPU exists,
and the cost of identity sharing (edits rendered with the prototype's attention) on each device.

    python benchmarks/bench_diffusion.py [--model DIR] [--n 16] [--resolution 64] [--steps 2]

Without ``--model`` it builds the tiny randomly initialised pipeline of the tests
(tests/_tiny_diffusion.py) in a temporary folder. Every figure comes from this one process:
``ratio`` = images/s of the row / images/s of the CPU baseline (no sharing). On a GPU it also
checks that fp16 output is finite and reports how far it lies from the CPU fp32 render.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from faceaudit.generate.base import Edit  # noqa: E402
from faceaudit.generate.diffusion import DiffusionGenerator  # noqa: E402


def time_renders(gen: DiffusionGenerator, seeds: list[int], repeats: int = 3) -> tuple[float, np.ndarray]:
    """Images/s over prototype + one edit per batch (the generate stage's pattern), best of repeats."""
    gen.render(seeds[: gen.batch_size], "skin=dark")  # warm-up: kernels, allocator
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        parts = []
        # batch by batch, prototype then edit, as the generate stage does: an edit reuses the
        # attention its batch's prototype just recorded
        for start in range(0, len(seeds), gen.batch_size):
            batch = seeds[start : start + gen.batch_size]
            parts.append(gen.render(batch, "skin=dark").images)
            gen.render(batch, "skin=dark", Edit("yaw", 1.0))
        protos = np.concatenate(parts)
        if gen.device == "cuda":
            import torch

            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        out = protos
        gen.release()
    return 2 * len(seeds) / best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="diffusers folder or hub id (default: the tests' tiny pipeline)")
    ap.add_argument("--n", type=int, default=16, help="seeds per measurement (each renders prototype + one edit)")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None, help="images per call (default: 4 on CPU, from free memory on CUDA)")
    args = ap.parse_args()

    import torch

    tmp = None
    model = args.model
    if model is None:
        from _tiny_diffusion import build_tiny_pipeline

        tmp = tempfile.TemporaryDirectory()
        model = str(build_tiny_pipeline(Path(tmp.name) / "tiny-sd"))
    settings = dict(resolution=args.resolution, num_inference_steps=args.steps, guidance_scale=5.0, batch_size=args.batch,
                    prompt="{skin} face, {edit}", neutral_phrase="frontal, neutral",
                    edit_phrases={"yaw": {"+1": "turned right"}})
    seeds = list(range(args.n))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    base = None
    cpu_images = None
    for device in devices:
        for sharing in (0.0, 0.8):
            gen = DiffusionGenerator(model_id=model, device=device, identity_sharing=sharing, **settings)
            ips, images = time_renders(gen, seeds)
            if base is None:
                base, cpu_images = ips, images
            extra = ""
            if device == "cuda":
                diff = np.abs(images.astype(float) - cpu_images).mean()
                extra = f"  mean |fp16 cuda - fp32 cpu| = {diff:.2f} grey levels"
            rows.append((device, str(gen.dtype).replace("torch.", ""), sharing, gen.batch_size, ips, ips / base, extra))
            del gen
    print(f"model {model}, {args.resolution} px, {args.steps} steps, {args.n} seeds x (prototype + 1 edit)")
    print(f"{'device':6} {'dtype':8} {'sharing':>7} {'batch':>5} {'images/s':>9} {'ratio':>6}")
    for device, dtype, sharing, batch, ips, ratio, extra in rows:
        print(f"{device:6} {dtype:8} {sharing:7.1f} {batch:5d} {ips:9.2f} {ratio:6.2f}{extra}")
    if len(devices) == 1:
        print("no CUDA device here: the fp16 GPU path was not measured")


if __name__ == "__main__":
    main()
