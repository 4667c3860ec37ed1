"""The embed stage on an executor against the in-process baseline, in the same process.

    .venv/bin/python benchmarks/bench_executors.py [--protocol protocols/quick.yaml]
        [--executor ray|local] [--workers 2] [--ray-address ADDR]

Renders the protocol's faces once into a temporary run, then embeds them with every model of the
protocol twice, each time from an empty embedding cache: in this process (the baseline, what
`faceaudit audit` does without --executor), and on the executor. Prints the seconds of each, the
ratio executor/baseline (below 1: faster), the executor's start-up, and whether the embeddings
tables are byte-identical (exit 1 when they are not). Needs `pip install 'faceaudit[ray]'` for ray.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceaudit import api, pipeline  # noqa: E402
from faceaudit.harness.embed import embed_faces  # noqa: E402
from faceaudit.harness.executors import get_executor  # noqa: E402
from faceaudit.models.registry import load_model  # noqa: E402
from faceaudit.protocol import load_protocol  # noqa: E402
from faceaudit.rundir import read_table, write_table  # noqa: E402


def embed_all(protocol, run: Path, faces, cache: Path, executor=None) -> tuple[float, dict[str, bytes]]:
    """Seconds to embed every face with every model (model loads included), and the tables' bytes."""
    tables = {}
    t0 = time.perf_counter()
    for spec in protocol.models:
        model = load_model(spec, device=protocol.device)
        handle = pipeline.ModelHandle(spec=spec, device=protocol.device, model=model)
        emb = embed_faces(model, faces, run, cache_dir=cache, progress=False, executor=executor,
                          model_factory=pipeline.model_factory(handle) if executor is not None else None)
        out = run / f"bench-{model.name}-{'exec' if executor is not None else 'base'}.parquet"
        write_table(out, emb)
        tables[model.name] = out.read_bytes()
    return time.perf_counter() - t0, tables


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default=str(ROOT / "protocols" / "quick.yaml"))
    ap.add_argument("--executor", default="ray", choices=["ray", "local"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray-address", default=None)
    args = ap.parse_args()

    protocol = load_protocol(args.protocol)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = tmp / "run"
        api.generate(protocol, run, progress=False)
        faces = read_table(run / "faces.parquet")
        print(f"{protocol.name}: {len(faces)} faces, models {', '.join(protocol.models)}; {os.cpu_count()} CPUs")

        base_s, base = embed_all(protocol, run, faces, tmp / "cache-base")
        print(f"baseline (in process): {base_s:.1f} s")

        t0 = time.perf_counter()
        with get_executor(args.executor, workers=args.workers, address=args.ray_address) as ex:
            start_s = time.perf_counter() - t0
            ex_s, other = embed_all(protocol, run, faces, tmp / "cache-exec", executor=ex)
            desc = ex.describe()
        same = base == other
        print(f"{desc}: start-up {start_s:.1f} s, embed {ex_s:.1f} s; "
              f"ratio {ex_s / base_s:.2f} (with start-up {(ex_s + start_s) / base_s:.2f}) against the baseline")
        print("embeddings tables byte-identical" if same else "embeddings tables DIFFER")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
