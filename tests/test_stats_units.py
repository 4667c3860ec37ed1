"""Bootstrap building blocks and fairness formulas against brute force / hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.stats import fairness as F
from faceaudit.stats.bootstrap import bootstrap_pvalue, pair_quadform, percentile_ci, seed_weights


def _brute(W, a, b, c):
    return np.array([(w[a] * w[b] * c).sum() for w in W])


@pytest.mark.parametrize("case", ["sparse", "dense", "complete", "complete_minus_one"])
def test_pair_quadform_paths_equal_brute_force(case):
    rng = np.random.default_rng(0)
    S = 30
    W = seed_weights(S, 50, rng)
    ia, ib = np.triu_indices(S, 1)
    if case == "sparse":
        k = rng.choice(len(ia), 20, replace=False)
        a, b, c = ia[k], ib[k], rng.integers(1, 4, 20).astype(float)
    elif case == "dense":
        a, b, c = ia, ib, rng.integers(0, 3, len(ia)).astype(float)
    elif case == "complete":
        a, b, c = np.r_[ia, ib], np.r_[ib, ia], np.ones(2 * len(ia))  # both orders: summed to 2 per pair
    else:
        a, b, c = ia[1:], ib[1:], np.ones(len(ia) - 1)
    np.testing.assert_allclose(pair_quadform(W, a, b, c, S), _brute(W, a, b, c), rtol=1e-12)


def test_seed_weights_and_pvalue():
    W = seed_weights(17, 300, np.random.default_rng(1))
    assert W.shape == (300, 17) and np.all(W.sum(axis=1) == 17)
    reps = np.r_[np.full(10, -1.0), np.full(90, 1.0)]
    assert bootstrap_pvalue(reps, 0.0) == pytest.approx(2 * 11 / 101)
    assert bootstrap_pvalue(np.zeros(50), 0.0) == 1.0
    lo, hi = percentile_ci(np.arange(1001.0), 0.95)
    assert (lo, hi) == pytest.approx((25.0, 975.0))


def test_fairness_formulas_by_hand():
    fmr = np.array([0.001, 0.002, 0.004])
    fnmr = np.array([0.05, 0.10, 0.02])
    a = 0.3
    assert F.max_min_ratio(fmr) == pytest.approx(4.0)
    assert F.max_min_ratio(np.zeros(3)) == 1.0
    assert F.max_min_ratio(np.array([0.0, 0.1])) == np.inf
    # FDR = 1 - (a * (0.004 - 0.001) + (1 - a) * (0.10 - 0.02))
    assert F.fdr(fmr, fnmr, a) == pytest.approx(1 - (0.3 * 0.003 + 0.7 * 0.08))
    # IR = 4^0.3 * 5^0.7
    assert F.inequity_rate(fmr, fnmr, a) == pytest.approx(4**0.3 * 5**0.7)
    # Gini, n = 3, x = (1, 2, 4): sum |xi - xj| over ordered pairs = 2 * (1 + 3 + 2) = 12, mean 7/3
    # G = 3/2 * 12 / (2 * 9 * 7/3) = 18 / 42
    assert F.gini(np.array([1.0, 2.0, 4.0])) == pytest.approx(18 / 42)
    assert F.gini(np.array([0.2, 0.2, 0.2])) == 0.0
    assert F.gini(np.zeros(4)) == 0.0
    # two groups, one with all the errors: G = 2/1 * 2x / (2 * 4 * x/2) = 1
    assert F.gini(np.array([0.0, 0.3])) == pytest.approx(1.0)
    g_fmr, g_fnmr = F.gini(fmr), F.gini(fnmr)
    assert F.garbe(fmr, fnmr, a) == pytest.approx(0.3 * g_fmr + 0.7 * g_fnmr)
    # broadcast over bootstrap replicates
    reps = np.stack([fmr, fmr * 2, fmr[::-1]])
    np.testing.assert_allclose(F.gini(reps), F.gini(fmr))
    np.testing.assert_allclose(F.max_min_ratio(reps), 4.0)
