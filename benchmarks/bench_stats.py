"""Speed: per-group FNMR with 1,000 bootstrap replicates on 1,000,000 genuine scores from 2,000 seeds.

    .venv/bin/python benchmarks/bench_stats.py [--rows 1000000] [--seeds 2000] [--boot 1000] [--fl-boot 2]

faceaudit's path (the one analyze_run uses): aggregate errors and trials to (seed x group) counts
once with np.bincount, draw a (n_boot x n_seeds) multinomial weight matrix, and get every replicate's
per-group FNMR from two matrix products. Fairlearn's MetricFrame(n_boot=...) resamples *rows* and
recomputes the grouped metric with pandas for each replicate; its intervals therefore ignore the seed
clustering (they are too narrow for this design) — the comparison is speed plus equal point
estimates only. Fairlearn is timed on --fl-boot replicates and extrapolated linearly to --boot
(its cost is the same for every replicate); the output says so.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

# imported up front so that import time (scipy, statsmodels) is not counted as compute time
from faceaudit.stats.bootstrap import percentile_ci, seed_weights
from faceaudit.stats.data import Layout
from faceaudit.stats.error_rates import Ratio, single_seed_count
from fairlearn.metrics import MetricFrame


def make_data(n_rows: int, n_seeds: int, groups: list[str], rng: np.random.Generator) -> pd.DataFrame:
    seed = rng.integers(0, n_seeds, n_rows)
    g = rng.integers(0, len(groups), n_rows)
    u = rng.normal(0, 0.08, n_seeds)  # seed random effect: pairs of a seed are correlated
    shift = np.linspace(0, -0.05, len(groups))
    score = 0.45 + shift[g] + u[seed] + rng.normal(0, 0.08, n_rows)
    return pd.DataFrame({"seed": seed, "group": np.array(groups, dtype=object)[g], "score": score})


def ours(df: pd.DataFrame, threshold: float, groups: list[str], n_boot: int, rng: np.random.Generator):
    seeds = np.unique(df["seed"].to_numpy())
    layout = Layout(seeds=seeds, groups=groups, conditions=[("all", 0.0)])
    s_idx = np.searchsorted(seeds, df["seed"].to_numpy())
    g_idx = pd.Categorical(df["group"], categories=groups).codes.astype(np.int64)
    c_idx = np.zeros(len(df), dtype=np.int64)
    W = seed_weights(layout.S, n_boot, rng)
    errors = (df["score"].to_numpy() < threshold).astype(float)
    r = Ratio(single_seed_count(W, s_idx, g_idx, c_idx, errors, layout),
              single_seed_count(W, s_idx, g_idx, c_idx, np.ones(len(df)), layout))
    est = r.rate()[: len(groups), 0]
    lo, hi = percentile_ci(r.rate_boot()[:, : len(groups), 0], 0.95)
    return est, lo, hi


def fairlearn_frame(df: pd.DataFrame, threshold: float, n_boot: int | None):
    def fnmr(y_true, y_pred):  # every row is a genuine comparison: FNMR = share rejected
        return float(np.mean(np.asarray(y_pred) == 0))

    kw = dict(n_boot=n_boot, ci_quantiles=[0.025, 0.975], random_state=0) if n_boot else {}
    return MetricFrame(metrics=fnmr, y_true=np.ones(len(df), dtype=int),
                       y_pred=(df["score"].to_numpy() >= threshold).astype(int),
                       sensitive_features=df["group"], **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, default=2_000)
    ap.add_argument("--boot", type=int, default=1_000)
    ap.add_argument("--fl-boot", type=int, default=2, help="fairlearn replicates actually timed")
    args = ap.parse_args()
    groups = ["skin=light", "skin=intermediate", "skin=dark"]
    rng = np.random.default_rng(0)
    df = make_data(args.rows, args.seeds, groups, rng)
    threshold = 0.35

    t0 = time.perf_counter()
    est, lo, hi = ours(df, threshold, groups, args.boot, np.random.default_rng(1))
    t_ours = time.perf_counter() - t0

    mf = fairlearn_frame(df, threshold, None)
    fl_est = mf.by_group.reindex(groups).to_numpy(dtype=float).ravel()
    np.testing.assert_allclose(est, fl_est, rtol=0, atol=1e-12)

    t0 = time.perf_counter()
    mf_b = fairlearn_frame(df, threshold, args.fl_boot)
    t_fl_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    fairlearn_frame(df, threshold, None)
    t_fl_point = time.perf_counter() - t0
    per_rep = max(t_fl_small - t_fl_point, 1e-9) / args.fl_boot
    t_fl = t_fl_point + per_rep * args.boot

    print(f"data: {args.rows:,} genuine scores, {args.seeds:,} seeds, {len(groups)} groups, threshold {threshold}")
    print("per-group FNMR (identical point estimates, asserted to 1e-12):")
    fl_lo, fl_hi = (np.asarray(x.reindex(groups), dtype=float).ravel() for x in mf_b.by_group_ci)
    for g, e, a, b, c, d in zip(groups, est, lo, hi, fl_lo, fl_hi):
        print(f"  {g:18s} {e:.5f}  faceaudit seed-cluster CI [{a:.5f}, {b:.5f}]"
              f"  fairlearn row CI ({args.fl_boot} reps) [{c:.5f}, {d:.5f}]")
    print(f"faceaudit: {args.boot} seed-cluster replicates in {t_ours:.3f} s (aggregation + weights + 2 matrix products)")
    print(f"fairlearn: {args.fl_boot} row replicates took {t_fl_small:.2f} s ({per_rep:.3f} s each after a "
          f"{t_fl_point:.2f} s point estimate); extrapolated linearly to {args.boot}: {t_fl:.1f} s")
    print(f"speed ratio: {t_fl / t_ours:.0f}x (goal >= 50x)")
    print("note: fairlearn resamples rows, not seed clusters, so its intervals ignore that pairs of a seed are "
          "correlated (they come out too narrow here); only speed and point estimates are compared.")


if __name__ == "__main__":
    main()
