"""Comparison p-values (faceaudit.stats.compare): the run-swap sign-flip test rejects at about the
nominal rate when run B is a fresh draw of the same model (no change), and finds a planted change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
from faceaudit.stats.compare import COMPARE_PVALUE_METHOD, _compare_model_rates, run_flip_pvalue
from faceaudit.stats.error_rates import compute_model_rates
from faceaudit.stats.primary import flip_matrix
from faceaudit.stats.simulate import example_model_data

GROUPS = ("skin=light", "skin=dark")


def _pair(rep: int, n_seeds: int, shift_b: float = 0.0, pair_sd: float = 0.08):
    """Run A and run B of one design: two versions of one model, each its common scores plus its own
    independent per-pair noise (so a seed's A and B results are exchangeable: no change); B's dark
    genuine scores moved by ``shift_b``."""
    import copy

    base = example_model_data(n_seeds=n_seeds, groups=GROUPS, seed=rep, gen_mean=0.35, gen_shift={"skin=dark": -0.1})
    rng = np.random.default_rng(10_000 + rep)
    runs = []
    for shift in (0.0, shift_b):
        md = copy.deepcopy(base)
        gen, imp = md.genuine, md.impostor
        dark = np.array([g == "skin=dark" for g in md.layout.groups])[gen.group]
        gen.score = np.where(gen.ok, gen.score + rng.normal(0, pair_sd, len(gen)) + shift * dark, np.nan)
        imp.score = np.where(imp.ok, imp.score + rng.normal(0, pair_sd, len(imp)), np.nan)
        runs.append(md)
    W = seed_weights(n_seeds, 10, bootstrap_rng(rep))
    return compute_model_rates(runs[0], W, [0.05]), compute_model_rates(runs[1], W, [0.05])


def test_null_rejection_rate_is_near_nominal_when_nothing_changed():
    n_seeds, reps = 20, 160
    flips = flip_matrix(n_seeds, np.random.default_rng(3), 999)
    rows = []
    for rep in range(reps):
        ra, rb = _pair(rep, n_seeds)
        rows += _compare_model_rates(ra, rb, 0.95, "skin=light", flips)
    t = pd.DataFrame(rows)
    assert (t["p_method"] == COMPARE_PVALUE_METHOD).all()
    # FMR "all" is pinned to the target by each run's own threshold: it cannot change, so it is not tested here
    for metric, group in (("fnmr", "skin=dark"), ("fnmr", "all"), ("fnmr_diff", "skin=dark"), ("fmr", "skin=dark"),
                          ("fmr_diff", "skin=dark")):
        p = t[(t["metric"] == metric) & (t["group"] == group)]["p_value"].to_numpy()
        assert len(p) == reps and np.isfinite(p).all()
        rate = float(np.mean(p < 0.05))
        # nominal 5%: at most the binomial 99.9% upper bound for 160 draws; the FMR sign test, whose counts
        # are shrunk by the dyadic design effect, may be conservative, the FNMR flip test not much
        assert rate <= 0.115, (metric, group, rate)
        if metric.startswith("fnmr"):
            assert rate >= 0.005, (metric, group, rate)
            assert np.mean(p < 0.5) > 0.25, (metric, group)  # spread over (0, 1], not piled at 1


def test_a_planted_change_gets_a_small_pvalue():
    ra, rb = _pair(999, 40, shift_b=-0.3)
    t = pd.DataFrame(_compare_model_rates(ra, rb, 0.95, "skin=light"))
    row = t[(t["metric"] == "fnmr_diff") & (t["group"] == "skin=dark")].iloc[0]
    assert row["change"] > 0 and row["p_value"] < 0.01 and row["significant"]
    light = t[(t["metric"] == "fnmr") & (t["group"] == "skin=light")].iloc[0]
    assert light["p_value"] > 0.01


def test_run_flip_pvalue_matches_an_explicit_enumeration():
    rng = np.random.default_rng(0)
    S = 6
    na, nb = rng.integers(0, 4, S).astype(float), rng.integers(0, 4, S).astype(float)
    d = np.full(S, 5.0)
    obs = nb.sum() / d.sum() - na.sum() / d.sum()
    hits = 0
    for mask in range(2 ** S):
        swap = np.array([(mask >> i) & 1 for i in range(S)], bool)
        b2, a2 = np.where(swap, na, nb), np.where(swap, nb, na)
        hits += abs(b2.sum() / d.sum() - a2.sum() / d.sum()) >= abs(obs) - 1e-12
    assert run_flip_pvalue([(na, d)], [(nb, d)], [1.0]) == pytest.approx(hits / 2 ** S)
