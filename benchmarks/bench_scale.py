"""Scale: the default protocol's design at many seeds, impostor statistics streamed in bounded memory.

    .venv/bin/python benchmarks/bench_scale.py --seeds 2000 [--base 148] [--models 1] [--boot 1000] [--check]

No images are rendered: every face of the default protocol's design (3 skin levels x 13 edit
conditions per seed) gets a synthetic 128-d embedding with a seed random effect (``u_seed + noise``,
a few faces fail to enrol). For each model the benchmark then runs the stages the analysis has at
scale: pairing (genuine pairs as a table; impostors as an :class:`EmbeddingSource` that generates
matched impostors per seed-pair block), scoring of the genuine pairs, and the analysis
(:func:`faceaudit.stats.analyze.analyze_design`), whose four passes over the impostor blocks score
and reduce every impostor comparison (cosine similarity, one matrix product per block). It prints
the time of every stage and pass, the number of comparisons, the peak RSS of each run (sampled from
/proc every 20 ms) and the ratios of the large run to the ``--base`` seed run in the same process.

``--check`` first runs the base design the way a run directory holds it (every impostor pair
materialised, scored row by row, the in-memory ``method="exact"`` analysis) and compares every
results table with the streamed analysis of the same faces (printed: largest relative difference
per table).
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from faceaudit.pairs import build_pairs, genuine_pairs, score_pairs
from faceaudit.protocol import load_protocol
from faceaudit.stats.analyze import analyze_design
from faceaudit.stats.data import make_layout, prepare_model
from faceaudit.stats.impostors import BLOCK_PAIRS, embedding_source

ROOT = Path(__file__).resolve().parents[1]
DIM = 128


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled; ru_maxrss cannot be reset)."""

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())


def design(proto, n_seeds: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    levels = [lv.name for lv in proto.protected.levels]
    conds = [("none", 0.0)] + [(e.attribute, float(v)) for e in proto.edits for v in e.levels]
    n = n_seeds * len(levels) * len(conds)
    seed = np.repeat(np.arange(n_seeds), len(levels) * len(conds))
    level = np.tile(np.repeat(np.arange(len(levels)), len(conds)), n_seeds)
    cond = np.tile(np.arange(len(conds)), n_seeds * len(levels))
    faces = pd.DataFrame({
        "face_id": [f"s{s}_{levels[lv]}_{c}" for s, lv, c in zip(seed, level, cond)],
        "seed": seed, "group": np.array([f"skin={x}" for x in levels], dtype=object)[level],
        "skin_tone": np.array(levels, dtype=object)[level],
        "edit_attr": np.array([a for a, _ in conds], dtype=object)[cond],
        "edit_level": np.array([v for _, v in conds])[cond],
    })
    u = rng.normal(size=(n_seeds, DIM)).astype(np.float32)  # the seed random effect
    emb = u[seed] + 0.8 * rng.normal(size=(n, DIM)).astype(np.float32)
    status = np.where(rng.random(n) < 0.003, "fte", "ok").astype(object)
    emb[status == "fte"] = np.nan
    return faces, pd.DataFrame({"face_id": faces["face_id"], "status": status, "embedding": list(emb)})


def cosine_rows(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


class CosineModel:
    name = "synthetic"

    def similarity(self, a, b):
        return cosine_rows(a, b)


def run_streamed(proto, n_seeds: int, n_models: int, similarity="cosine", block_pairs: int = BLOCK_PAIRS) -> dict:
    t: dict[str, float] = {}
    rng = np.random.default_rng(n_seeds)
    with PeakRSS() as mem:
        c = time.perf_counter()
        faces, emb = design(proto, n_seeds, rng)
        t["design (faces, embeddings)"] = time.perf_counter() - c
        layout = make_layout(faces, proto.group_names)
        mds, n_imp = [], 0
        for m in range(n_models):
            c = time.perf_counter()
            gen = genuine_pairs(faces)
            gen.insert(0, "pair_id", np.arange(len(gen), dtype=np.int64))
            source = embedding_source(faces, emb, layout, similarity=similarity, block_pairs=block_pairs)
            n_imp = source.n_pairs()
            t["pairing"] = t.get("pairing", 0.0) + time.perf_counter() - c
            c = time.perf_counter()
            model = CosineModel()
            model.name = f"model{m}"
            scores = score_pairs(gen, emb, model)
            md = prepare_model(model.name, gen, scores, emb[["face_id", "status"]], faces, layout)
            t["scoring (genuine)"] = t.get("scoring (genuine)", 0.0) + time.perf_counter() - c
            mds.append((md, source, model.name))
        timings: dict[str, float] = {}
        c, cpu = time.perf_counter(), time.process_time()
        out, _ = analyze_design(proto, layout, mds, timings=timings)
        t["analysis (total)"] = time.perf_counter() - c
        # CPU seconds of this process (all threads): less sensitive than wall time to other jobs
        t["analysis (CPU time)"] = time.process_time() - cpu
        for k, v in timings.items():
            t[f"  {k} (impostor scoring + reduction)" if k.startswith("pass") else f"  {k}"] = v
    return {"seeds": n_seeds, "impostors_per_model": n_imp, "genuine_per_model": len(mds[0][0].genuine),
            "times": t, "peak_rss": mem.peak, "tables": out}


def check_equal(proto, n_seeds: int) -> None:
    """The base design as a run directory holds it today vs the streamed analysis of the same faces."""
    rng = np.random.default_rng(n_seeds)
    faces, emb = design(proto, n_seeds, rng)
    layout = make_layout(faces, proto.group_names)
    model = CosineModel()
    c = time.perf_counter()
    with PeakRSS() as mem:
        pairs = build_pairs(faces)
        scores = score_pairs(pairs, emb, model)
        md = prepare_model(model.name, pairs, scores, emb[["face_id", "status"]], faces, layout)
        ref, _ = analyze_design(proto, layout, [(md, None, "scores")])
    print(f"check: in-memory ('exact') analysis of {n_seeds} seeds, {int((pairs['kind'] == 'impostor').sum()):,} "
          f"impostor pairs materialised: {time.perf_counter() - c:.1f} s, peak RSS {mem.peak / 2**30:.2f} GiB")
    gen = pairs[pairs["kind"] == "genuine"]
    md_gen = prepare_model(model.name, gen, scores[scores["pair_id"].isin(gen["pair_id"])], emb[["face_id", "status"]],
                           faces, layout)
    got, _ = analyze_design(proto, layout, [(md_gen, embedding_source(faces, emb, layout, model.similarity), "emb")])
    for name, a in ref.items():
        b = got[name]
        assert list(a.columns) == list(b.columns) and len(a) == len(b), name
        worst = 0.0
        for col in a.columns:
            if a[col].dtype.kind in "fiu":
                x, y = a[col].to_numpy(float), b[col].to_numpy(float)
                assert np.array_equal(np.isnan(x), np.isnan(y)), (name, col)
                f = np.isfinite(x)
                if f.any():
                    worst = max(worst, float(np.max(np.abs(x[f] - y[f]) / np.maximum(np.abs(x[f]), 1e-300))))
            else:
                assert a[col].equals(b[col]), (name, col)
        print(f"check: {name:14s} {len(a):6d} rows, same columns and rows; largest relative difference {worst:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--base", type=int, default=148)
    ap.add_argument("--models", type=int, default=1)
    ap.add_argument("--boot", type=int, default=None, help="bootstrap replicates (default: the protocol's, 1000)")
    ap.add_argument("--block-pairs", type=int, default=BLOCK_PAIRS, help="impostor comparisons per block")
    ap.add_argument("--check", action="store_true", help="compare with the in-memory analysis at --base seeds first")
    args = ap.parse_args()
    proto = load_protocol(ROOT / "protocols" / "default.yaml")
    if args.boot:
        proto = proto.model_copy(update={"analysis": proto.analysis.model_copy(update={"n_boot": args.boot})})
    if args.check:
        check_equal(proto, args.base)
    runs = [run_streamed(proto, n, args.models, block_pairs=args.block_pairs) for n in (args.base, args.seeds)]
    for r in runs:
        print(f"\n{r['seeds']} seeds: {r['impostors_per_model']:,} impostor and {r['genuine_per_model']:,} genuine "
              f"comparisons per model, {args.models} model(s), n_boot {proto.analysis.n_boot}, "
              f"{args.block_pairs:,} comparisons per block")
        for k, v in r["times"].items():
            print(f"  {k:55s} {v:8.2f} s")
        print(f"  peak RSS {r['peak_rss'] / 2**30:.2f} GiB")
    a, b = runs
    comp = b["impostors_per_model"] / a["impostors_per_model"]
    tr = b["times"]["analysis (total)"] / a["times"]["analysis (total)"]
    cr = b["times"]["analysis (CPU time)"] / a["times"]["analysis (CPU time)"]
    print(f"\nratio {b['seeds']} / {a['seeds']} seeds: impostor comparisons x{comp:.1f}, analysis wall time x{tr:.1f} "
          f"(per comparison x{tr / comp:.2f}), analysis CPU time x{cr:.1f} (per comparison x{cr / comp:.2f}), "
          f"peak RSS x{b['peak_rss'] / a['peak_rss']:.2f}")
    print(f"process peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
