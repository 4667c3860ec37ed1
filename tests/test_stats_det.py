"""DET curves with bootstrap bands (issue 16, item 3): the centre against scikit-learn, the band's
coverage against the closed-form curve of a normal score model, and the clustered band against a
planted seed effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import det_curve, roc_curve

from faceaudit.stats.bootstrap import seed_weights
from faceaudit.stats.det import det_band, det_band_table, fmr_grid, fnmr_at_fmr


def _sklearn_fnmr_at_fmr(gen, imp, f):
    """FNMR at the smallest roc_curve threshold whose FPR is <= f (sklearn's own sweep)."""
    y = np.r_[np.ones(len(gen)), np.zeros(len(imp))]
    fpr, tpr, thr = roc_curve(y, np.r_[gen, imp], drop_intermediate=False)
    ok = fpr <= f
    i = np.flatnonzero(ok)[np.argmin(thr[ok])]
    return 1.0 - tpr[i], thr[i], fpr[i]


def test_centre_equals_sklearn_roc_curve_with_ties():
    rng = np.random.default_rng(3)
    gen = np.round(rng.normal(1.5, 1, 700), 1)  # rounded: many ties within and across kinds
    imp = np.round(rng.normal(0, 1, 5000), 1)
    grid = fmr_grid(len(imp))
    fnmr, thr, fmr = fnmr_at_fmr(gen, imp, grid)
    for f, a, t, m in zip(grid, fnmr, thr, fmr):
        want_fnmr, want_t, want_fpr = _sklearn_fnmr_at_fmr(gen, imp, f)
        assert a == pytest.approx(want_fnmr, abs=1e-12) and m == pytest.approx(want_fpr, abs=1e-12)
        if np.isfinite(want_t):
            assert t == want_t
        assert m <= f
    # the points lie on sklearn's det_curve (its FNR at the same threshold)
    fpr_d, fnr_d, thr_d = det_curve(np.r_[np.ones(len(gen)), np.zeros(len(imp))], np.r_[gen, imp])
    for a, t in zip(fnmr, thr):
        if t in set(thr_d):
            assert a == pytest.approx(fnr_d[list(thr_d).index(t)], abs=1e-12)


def test_band_centre_is_the_full_data_curve_and_unit_weights_reproduce_it():
    rng = np.random.default_rng(4)
    S = 30
    gen, gseed = rng.normal(2, 1, 3 * S), np.repeat(np.arange(S), 3)
    a, b = np.triu_indices(S, 1)
    imp = rng.normal(0, 1, len(a))
    grid = fmr_grid(len(imp))
    W = np.ones((5, S))  # every seed drawn once: each replicate is the data itself
    band = det_band(gen, gseed, imp, a, b, W, grid, 0.95)
    fnmr, _, _ = fnmr_at_fmr(gen, imp, grid)
    assert np.array_equal(band["fnmr"].to_numpy(), fnmr)
    assert np.allclose(band["fnmr_lo"], fnmr) and np.allclose(band["fnmr_hi"], fnmr)


def test_unclustered_band_covers_the_true_normal_curve_at_about_the_nominal_rate():
    """Scores genuine ~ N(2, 1), impostor ~ N(0, 1): FNMR at FMR f is Phi(Phi^-1(1 - f) - 2) exactly.
    Each pair its own cluster (i.i.d. bootstrap); the pointwise 90% band should cover it ~90% of the time."""
    rng = np.random.default_rng(11)
    grid = np.array([0.2, 0.1, 0.05])
    truth = norm.cdf(norm.ppf(1 - grid) - 2.0)
    n_gen, n_imp, reps, B = 300, 2000, 150, 250
    hits = np.zeros(len(grid))
    for _ in range(reps):
        gen, imp = rng.normal(2, 1, n_gen), rng.normal(0, 1, n_imp)
        W = seed_weights(n_gen + n_imp, B, rng)
        band = det_band(gen, np.arange(n_gen), imp, n_gen + np.arange(n_imp), None, W, grid, 0.90)
        hits += (band["fnmr_lo"].to_numpy() <= truth) & (truth <= band["fnmr_hi"].to_numpy())
    coverage = hits / reps
    # 150 replications: the binomial SD of a 90% coverage is 2.4 pp; accept 83-97% (measured 87-92%)
    assert np.all((coverage >= 0.83) & (coverage <= 0.97)), coverage


def test_seed_clustered_band_is_wider_when_seeds_carry_a_shared_effect():
    """A planted seed effect (each seed's genuine scores share a random offset) makes the genuine
    pairs of a seed correlated: the seed-clustered band must be wider than the one that treats every
    pair as independent, and about as wide when there is no seed effect."""
    rng = np.random.default_rng(5)
    S, k = 60, 8
    gseed = np.repeat(np.arange(S), k)
    a, b = np.triu_indices(S, 1)
    grid = np.array([0.1, 0.05])
    W_seed = seed_weights(S, 400, rng)
    W_pair = seed_weights(S * k, 400, rng)
    widths = {}
    for effect in (0.0, 1.0):
        gen = 2.0 + effect * rng.normal(0, 1, S)[gseed] + rng.normal(0, 1, S * k)
        imp = rng.normal(0, 1, len(a))
        clustered = det_band(gen, gseed, imp, a, b, W_seed, grid, 0.95)
        naive = det_band(gen, np.arange(S * k), imp, a, b, np.c_[W_pair, W_seed], grid, 0.95)
        widths[effect] = ((clustered["fnmr_hi"] - clustered["fnmr_lo"]).mean(),
                          (naive["fnmr_hi"] - naive["fnmr_lo"]).mean())
    assert widths[1.0][0] > 1.5 * widths[1.0][1]
    assert 0.6 < widths[0.0][0] / widths[0.0][1] < 1.6


def test_det_band_table_covers_every_group_and_matches_the_direct_curve():
    from faceaudit.stats.bootstrap import bootstrap_rng
    from faceaudit.stats.simulate import example_model_data

    md = example_model_data(n_seeds=16)
    t = det_band_table(md, seed_weights(md.layout.S, 120, bootstrap_rng(1)), 0.95)
    assert set(t["group"]) == set(md.layout.groups)
    gen, imp = md.genuine, md.impostor
    for g, name in enumerate(md.layout.groups):
        rows = t[t["group"] == name]
        gs = gen.score[gen.ok & (gen.group == g)]
        is_ = imp.score[imp.ok & (imp.group == g)]
        assert rows["n_genuine"].iloc[0] == len(gs) and rows["n_impostor"].iloc[0] == len(is_)
        assert np.array_equal(rows["fmr_grid"].to_numpy(), fmr_grid(len(is_)))
        for f, got in zip(rows["fmr_grid"], rows["fnmr"]):
            assert got == pytest.approx(_sklearn_fnmr_at_fmr(gs, is_, f)[0], abs=1e-12)
    assert ((t["fnmr_lo"] <= t["fnmr"] + 1e-12) & (t["fnmr"] <= t["fnmr_hi"] + 1e-12)).all()


def test_grid_thresholds_equal_threshold_at_fmr():
    from faceaudit.stats.thresholds import threshold_at_fmr

    rng = np.random.default_rng(8)
    gen, imp = np.round(rng.normal(1, 1, 300), 2), np.round(rng.normal(0, 1, 3000), 2)
    grid = fmr_grid(len(imp))
    fnmr, thr, fmr = fnmr_at_fmr(gen, imp, grid)
    want = [threshold_at_fmr(imp, f, candidates=np.r_[gen, imp]) for f in grid]
    assert thr.tolist() == want
    assert fnmr.tolist() == [float(np.mean(gen < t)) for t in want]
    assert fmr.tolist() == [float(np.mean(imp >= t)) for t in want]
