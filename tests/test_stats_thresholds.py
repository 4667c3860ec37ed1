"""Thresholds, FMR/FNMR, EER and AUC against scikit-learn's roc_curve and pyeer on the same scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from faceaudit.stats import thresholds as T


def _scores(rng, n_gen=700, n_imp=5000, ties=False):
    gen = rng.normal(0.6, 0.15, n_gen)
    imp = rng.normal(0.1, 0.12, n_imp)
    if ties:  # quantised scores: many exact ties within and across the two kinds
        gen, imp = np.round(gen, 2), np.round(imp, 2)
    return gen, imp


def _sk_threshold(gen, imp, target):
    y = np.r_[np.ones(len(gen)), np.zeros(len(imp))]
    fpr, tpr, thr = roc_curve(y, np.r_[gen, imp], drop_intermediate=False)
    ok = fpr <= target
    i = np.flatnonzero(ok)[np.argmin(thr[ok])]
    return thr[i], fpr[i], 1 - tpr[i]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("target", [1e-3, 1e-2, 0.05, 0.2])
def test_threshold_and_rates_match_sklearn_roc_curve(ties, target):
    gen, imp = _scores(np.random.default_rng(1), ties=ties)
    t = T.threshold_at_fmr(imp, target, candidates=gen)
    t_sk, fmr_sk, fnmr_sk = _sk_threshold(gen, imp, target)
    assert t == t_sk
    assert T.fmr_at(imp, t) == pytest.approx(fmr_sk, abs=1e-12)
    assert T.fnmr_at(gen, t) == pytest.approx(fnmr_sk, abs=1e-12)
    assert T.fmr_at(imp, t) <= target
    # no smaller observed score would also satisfy the target
    smaller = np.r_[gen, imp][np.r_[gen, imp] < t]
    if len(smaller):
        assert T.fmr_at(imp, smaller.max()) > target


def test_threshold_convention_by_hand():
    imp = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    gen = np.array([0.5, 0.95])
    # 1 false match of 5 allowed at FMR 0.2: c = 0.4 must be rejected, t = smallest score above it
    assert T.threshold_at_fmr(imp, 0.2, candidates=gen) == 0.5
    assert T.threshold_at_fmr(imp, 0.2) == 0.9  # impostor-only candidates
    # below 1/N nothing may match: the threshold goes above every impostor
    assert T.threshold_at_fmr(imp, 0.1, candidates=gen) == 0.95
    assert T.threshold_at_fmr(imp, 0.1) == float("inf")
    # ties are never split: two impostors at 0.9 and FMR 0.2 (1 of 6) -> both rejected
    assert T.threshold_at_fmr(np.r_[imp, 0.9], 0.2, candidates=gen) == 0.95


def test_eer_auc_and_curve_match_pyeer():
    # pyeer.eer_info.get_eer_stats imports pkg_resources (gone from modern setuptools) for its report
    # module, so call the functions it is made of: calculate_roc -> rates, get_eer_values, calculate_roc_auc.
    from pyeer.eer_stats import calculate_roc, calculate_roc_auc, get_eer_values

    for ties in (False, True):
        gen, imp = _scores(np.random.default_rng(2), n_gen=400, n_imp=3000, ties=ties)
        gen = np.r_[gen, imp[:40] + 0.05]  # some overlap so the EER is not ~0
        thrs, p_fmr, p_fnmr = calculate_roc(gen.copy(), imp.copy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idx, _, _, p_eer = get_eer_values(p_fmr, p_fnmr)
            p_auc = calculate_roc_auc(p_fmr, p_fnmr)
        eer, thr = T.eer(gen, imp)
        assert eer == pytest.approx(p_eer, abs=1e-12)
        assert thr == pytest.approx(thrs[idx])
        y = np.r_[np.ones(len(gen)), np.zeros(len(imp))]
        assert T.roc_auc(gen, imp) == pytest.approx(roc_auc_score(y, np.r_[gen, imp]), abs=1e-12)
        assert T.roc_auc(gen, imp) == pytest.approx(p_auc, abs=1e-9)
        t, fmr, fnmr = T.error_curve(gen, imp)
        np.testing.assert_allclose(t[:-1], thrs)
        np.testing.assert_allclose(fmr[:-1], p_fmr, atol=1e-15)
        np.testing.assert_allclose(fnmr[:-1], p_fnmr, atol=1e-15)
        # the threshold at a target FMR is the smallest pyeer curve threshold with FMR <= target
        for target in (1e-3, 1e-2):
            ours = T.threshold_at_fmr(imp, target, candidates=gen)
            assert ours == thrs[p_fmr <= target].min()
            assert T.fnmr_at(gen, ours) == pytest.approx(p_fnmr[thrs == ours][0])


def test_tar_at_far_and_det_points():
    gen, imp = _scores(np.random.default_rng(3))
    t = T.threshold_at_fmr(imp, 1e-2, candidates=gen)
    assert T.tar_at_far(gen, imp, 1e-2) == pytest.approx(1 - T.fnmr_at(gen, t))
    thr, fmr, fnmr = T.det_points(gen, imp, max_points=100)
    assert len(thr) <= 102 and np.all(np.diff(thr) > 0)
    assert np.all(np.diff(fmr) <= 0) and np.all(np.diff(fnmr) >= 0)
    full_t, full_fmr, _ = T.error_curve(gen, imp)
    # every kept point is a real point of the full curve
    np.testing.assert_allclose(fmr, full_fmr[np.searchsorted(full_t, thr)])
