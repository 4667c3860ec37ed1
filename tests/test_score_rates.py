"""faceaudit.stats.ErrorRates: a user's own scores in memory.

Every number is checked against an independent recomputation: rates against direct counts and
scikit-learn's roc_curve, the threshold against the audits' threshold function and roc_curve, the
bootstrap intervals against a plain loop over replicates with the same weights, the FMR intervals
against the dyadic-robust variance written as the double sum over seed pairs that share an identity,
and the whole table against an audit of the same scores (``faceaudit import scores``). A planted
group effect of known size is found; a control without one is not."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_curve

import faceaudit.stats
from faceaudit.stats import thresholds as T
from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
from faceaudit.stats.dyadic import logit_interval, small_sample_factor
from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs

PAIR = ("identity_a", "identity_b")


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return simulate_score_pairs(n_identities=12, groups=("A", "B", "C"), shift={"B": -0.5}, impostor_shift={"C": 0.7},
                                seed=11)


def _direct(pairs: pd.DataFrame, t: float) -> pd.DataFrame:
    gen = pairs[pairs["kind"] == "genuine"]
    imp = pairs[pairs["kind"] == "impostor"]
    return pd.DataFrame({
        "n_genuine": gen.groupby("group").size(),
        "false_non_matches": (gen["score"] < t).groupby(gen["group"]).sum(),
        "n_impostor": imp.groupby("group").size(),
        "false_matches": (imp["score"] >= t).groupby(imp["group"]).sum(),
    })


def test_public_name_and_validation(pairs):
    assert faceaudit.stats.ErrorRates is ErrorRates
    with pytest.raises(ValueError, match="exactly one"):
        ErrorRates(pairs, group="group", cluster=PAIR)
    with pytest.raises(ValueError, match="exactly one"):
        ErrorRates(pairs, group="group", cluster=PAIR, threshold=1.0, target_fmr=0.01)
    with pytest.raises(ValueError, match="missing columns"):
        ErrorRates(pairs.drop(columns="score"), group="group", cluster=PAIR, threshold=1.0)
    bad = pairs.copy()
    bad.loc[5, "kind"] = "twin"
    with pytest.raises(ValueError, match="row 6"):
        ErrorRates(bad, group="group", cluster=PAIR, threshold=1.0)
    bad = pairs.copy()
    bad.loc[0, "identity_b"] = "B-000"  # a genuine pair across two identities
    with pytest.raises(ValueError, match="row 1 is genuine"):
        ErrorRates(bad, group="group", cluster=PAIR, threshold=1.0)


@pytest.mark.parametrize("cluster", [PAIR, "identity_a"])
def test_rates_at_a_fixed_threshold_equal_a_direct_count(pairs, cluster):
    t = 1.3
    er = ErrorRates(pairs, group="group", cluster=cluster, threshold=t, n_boot=50)
    d = _direct(pairs, t)
    bg = er.by_group.set_index("group")
    assert bg.index.tolist() == ["A", "B", "C"]
    for col in ("n_genuine", "false_non_matches", "n_impostor", "false_matches"):
        assert bg[col].tolist() == d[col].tolist()
    assert bg["fnmr"].tolist() == (d["false_non_matches"] / d["n_genuine"]).tolist()
    assert bg["fmr"].tolist() == (d["false_matches"] / d["n_impostor"]).tolist()
    assert (bg["threshold"] == t).all()
    ov = er.overall.iloc[0]
    assert ov["fnmr"] == (pairs.loc[pairs["kind"] == "genuine", "score"] < t).mean()
    assert ov["fmr"] == (pairs.loc[pairs["kind"] == "impostor", "score"] >= t).mean()


def test_rates_match_scikit_learn_roc_curve(pairs):
    er = ErrorRates(pairs, group="group", cluster=PAIR, target_fmr=0.05, n_boot=50)
    t = er.threshold
    for _, row in er.by_group.iterrows():
        sub = pairs[pairs["group"] == row["group"]]
        fpr, tpr, thr = roc_curve((sub["kind"] == "genuine").astype(int), sub["score"], drop_intermediate=False)
        i = np.flatnonzero(thr >= t)[-1]  # thresholds descending: the operating point of any t' in (next score, thr[i]]
        assert row["fmr"] == pytest.approx(fpr[i], abs=1e-15)
        assert row["fnmr"] == pytest.approx(1 - tpr[i], abs=1e-15)


def test_threshold_from_target_fmr_is_the_audits(pairs):
    imp = pairs.loc[pairs["kind"] == "impostor", "score"].to_numpy()
    for f in (0.001, 0.01, 0.1):
        er = ErrorRates(pairs, group="group", cluster=PAIR, target_fmr=f, n_boot=20)
        assert er.threshold == T.threshold_at_fmr(imp, f, candidates=pairs["score"].to_numpy())
        fpr, _, thr = roc_curve((pairs["kind"] == "genuine").astype(int), pairs["score"], drop_intermediate=False)
        assert er.threshold == thr[fpr <= f].min()
        assert er.overall["fmr"].iloc[0] <= f


def _loop_weights(pairs, W, ids, cluster_pair: bool):
    """Per replicate and pair: the pair's weight, written out row by row."""
    index = {name: i for i, name in enumerate(ids)}
    w = np.empty((W.shape[0], len(pairs)))
    for j, (a, b, kind) in enumerate(zip(pairs["identity_a"], pairs["identity_b"], pairs["kind"])):
        if kind == "genuine" or not cluster_pair:
            w[:, j] = W[:, index[a]]
        else:
            w[:, j] = W[:, index[a]] * W[:, index[b]]
    return w


@pytest.mark.parametrize("cluster", [PAIR, "identity_a"])
def test_bootstrap_intervals_equal_a_loop_over_replicates(pairs, cluster):
    t, B, level = 1.3, 300, 0.9
    er = ErrorRates(pairs, group="group", cluster=cluster, threshold=t, n_boot=B, ci_level=level, random_state=7)
    ids = sorted(set(pairs["identity_a"]) | set(pairs["identity_b"]))
    W = seed_weights(len(ids), B, bootstrap_rng(7))
    w = _loop_weights(pairs, W, ids, cluster_pair=not isinstance(cluster, str))
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    gen = (pairs["kind"] == "genuine").to_numpy()
    fnm = gen & (pairs["score"].to_numpy() < t)
    fm = ~gen & (pairs["score"].to_numpy() >= t)
    reps = {}
    for g in er.groups:
        in_g = (pairs["group"] == g).to_numpy()
        reps[("fnmr", g)] = (w[:, in_g & fnm]).sum(1) / (w[:, in_g & gen]).sum(1)
        reps[("fmr", g)] = (w[:, in_g & fm]).sum(1) / (w[:, in_g & ~gen]).sum(1)
        reps[("s_fnmr", g)] = ((w[:, in_g & fnm]).sum(1) + 0.5) / ((w[:, in_g & gen]).sum(1) + 1)
        reps[("s_fmr", g)] = ((w[:, in_g & fm]).sum(1) + 0.5) / ((w[:, in_g & ~gen]).sum(1) + 1)
    bg = er.by_group.set_index("group")
    for g in er.groups:
        # rates: the audits' interval, Wilson on the effective counts whose design effect comes from the
        # identity-clustered variance of the replicates (statsmodels' Wilson on those counts)
        k, n = bg.loc[g, "false_non_matches"], bg.loc[g, "n_genuine"]
        assert (bg.loc[g, "fnmr_lo"], bg.loc[g, "fnmr_hi"]) == pytest.approx(
            _wilson_effective_by_statsmodels(k, n, np.nanvar(reps[("fnmr", g)], ddof=1), level), rel=1e-9)
        if isinstance(cluster, str):  # one-way clusters: the FMR interval's variance is the bootstrap's too
            k, n = bg.loc[g, "false_matches"], bg.loc[g, "n_impostor"]
            assert (bg.loc[g, "fmr_lo"], bg.loc[g, "fmr_hi"]) == pytest.approx(
                _wilson_effective_by_statsmodels(k, n, np.nanvar(reps[("fmr", g)], ddof=1), level), rel=1e-9)
    # paired difference and ratio of FNMR: the difference of the replicates
    d = er.difference().set_index(["group", "metric"])
    r = er.ratio().set_index(["group", "metric"])
    for g in ("B", "C"):
        lo, hi = np.nanpercentile(reps[("fnmr", g)] - reps[("fnmr", "A")], q)
        assert (d.loc[(g, "fnmr_diff"), "ci_lo"], d.loc[(g, "fnmr_diff"), "ci_hi"]) == pytest.approx((lo, hi), abs=1e-12)
        lo, hi = np.nanpercentile(reps[("s_fnmr", g)] / reps[("s_fnmr", "A")], q)
        assert (r.loc[(g, "fnmr_ratio"), "ci_lo"], r.loc[(g, "fnmr_ratio"), "ci_hi"]) == pytest.approx((lo, hi), rel=1e-12)
    # max / geometric mean and max / min: the replicates of the smoothed rates, impostor pairs with both identities' weight
    m = er.max_geomean().set_index("metric")
    for side in ("fmr", "fnmr"):
        x = np.column_stack([reps[(f"s_{side}", g)] for g in er.groups])
        gm = x.max(1) / np.exp(np.log(x).mean(1))
        assert (m.loc[f"{side}_max_geomean", "ci_lo"], m.loc[f"{side}_max_geomean", "ci_hi"]) == pytest.approx(
            tuple(np.percentile(gm, q)), rel=1e-12)
        mm = x.max(1) / x.min(1)
        assert (m.loc[f"{side}_max_min", "ci_lo"], m.loc[f"{side}_max_min", "ci_hi"]) == pytest.approx(
            tuple(np.percentile(mm, q)), rel=1e-12)
        assert m.loc[f"{side}_max_min", "smoothing"] == "(errors + 0.5) / (trials + 1)"


def _wilson_effective_by_statsmodels(k, n, variance, level):
    """Wilson interval (statsmodels) of k events in n trials shrunk by the design effect
    variance / (p (1 - p) / n), at least 1; exactly 0 / 1 at the ends."""
    from statsmodels.stats.proportion import proportion_confint

    p = k / n
    deff = max(variance / (p * (1 - p) / n), 1.0) if 0 < p < 1 and np.isfinite(variance) else 1.0
    lo, hi = proportion_confint(k / deff, n / deff, alpha=1 - level, method="wilson")
    return (0.0 if k == 0 else lo), (1.0 if k == n else hi)


def _dyadic_variance_by_double_sum(a, b, psi) -> float:
    """sum over seed pairs d, d' that share an identity (d == d' included) of E_d E_d', corrected and floored."""
    E: dict = {}
    for x, y, p in zip(a, b, psi):
        key = (min(x, y), max(x, y))
        E[key] = E.get(key, 0.0) + p
    v = 0.0
    for d1, d2 in itertools.product(E, E):
        if set(d1) & set(d2):
            v += E[d1] * E[d2]
    n = len({s for d in E for s in d})
    ee = sum(e * e for e in E.values())
    return max(small_sample_factor(n) * v, ee)


def test_fmr_intervals_equal_the_dyadic_double_sum(pairs):
    t, level = 1.0, 0.95
    er = ErrorRates(pairs, group="group", cluster=PAIR, threshold=t, n_boot=20, ci_level=level)
    bg = er.by_group.set_index("group")
    imp = pairs[pairs["kind"] == "impostor"]
    hit = {}
    for g in er.groups:
        sub = imp[imp["group"] == g]
        h = (sub["score"] >= t).to_numpy(dtype=float)
        hit[g] = (sub, h)
        rate = h.mean()
        se = np.sqrt(_dyadic_variance_by_double_sum(sub["identity_a"], sub["identity_b"], h - rate)) / len(h)
        assert (bg.loc[g, "fmr_lo"], bg.loc[g, "fmr_hi"]) == pytest.approx(
            _wilson_effective_by_statsmodels(h.sum(), len(h), se ** 2, level), rel=1e-9)
    # the paired difference: contributions of both groups summed per seed pair
    d = er.difference().set_index(["group", "metric"])
    z = norm.ppf((1 + level) / 2)
    for g in ("B", "C"):
        (sg, hg), (sr, hr) = hit[g], hit["A"]
        psi = np.concatenate([(hg - hg.mean()) / len(hg), -(hr - hr.mean()) / len(hr)])
        se = np.sqrt(_dyadic_variance_by_double_sum(np.concatenate([sg["identity_a"], sr["identity_a"]]),
                                                    np.concatenate([sg["identity_b"], sr["identity_b"]]), psi))
        est = hg.mean() - hr.mean()
        row = d.loc[(g, "fmr_diff")]
        assert row["estimate"] == pytest.approx(est, abs=1e-15)
        assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((est - z * se, est + z * se), rel=1e-10)


def test_planted_fnmr_and_fmr_effects_are_found_with_the_right_size():
    # genuine score 2 + shift + u + e, u ~ N(0, 0.5^2), e ~ N(0, 1): FNMR(t) = Phi((t - 2 - shift) / sqrt(1.25))
    pairs = simulate_score_pairs(n_identities=60, genuine_per_identity=5, shift={"B": -1.0}, impostor_shift={"B": 0.8},
                                 seed=3)
    t = 2.0
    true_fnmr_diff = norm.cdf(1.0 / np.sqrt(1.25)) - norm.cdf(0.0)  # 0.314
    # impostor score shift + v_i + v_j + e: SD sqrt(2 * 0.09 + 1)
    sd = np.sqrt(2 * 0.09 + 1)
    true_fmr_diff = norm.sf((t - 0.8) / sd) - norm.sf(t / sd)
    er = ErrorRates(pairs, group="group", cluster=PAIR, threshold=t, n_boot=1000)
    d = er.difference().set_index("metric")
    for metric, true in (("fnmr_diff", true_fnmr_diff), ("fmr_diff", true_fmr_diff)):
        row = d.loc[metric]
        assert row["ci_lo"] > 0 and row["p_value"] < 0.05, metric
        assert row["ci_lo"] <= true <= row["ci_hi"], (metric, true, row.to_dict())
        assert abs(row["estimate"] - true) < 0.5 * true
    r = er.ratio().set_index("metric")
    assert r.loc["fnmr_ratio", "ci_lo"] > 1 and r.loc["fmr_ratio", "ci_lo"] > 1
    m = er.max_geomean().set_index("metric")
    assert m.loc["fnmr_max_geomean", "worst_group"] == "B" and m.loc["fnmr_max_geomean", "ci_lo"] > 1


def test_control_without_effect_covers_zero():
    pairs = simulate_score_pairs(n_identities=60, genuine_per_identity=5, seed=4)
    er = ErrorRates(pairs, group="group", cluster=PAIR, threshold=2.0, n_boot=1000)
    for _, row in er.difference().iterrows():
        assert row["ci_lo"] <= 0 <= row["ci_hi"], row.to_dict()
    for _, row in er.ratio().iterrows():
        assert row["ci_lo"] <= 1 <= row["ci_hi"], row.to_dict()


def test_reference_and_plot(pairs):
    er = ErrorRates(pairs, group="group", cluster=PAIR, threshold=1.0, n_boot=50)
    assert er.difference()["reference"].unique().tolist() == ["A"]
    assert sorted(er.difference(reference="C")["group"].unique()) == ["A", "B"]
    with pytest.raises(ValueError, match="reference"):
        er.ratio(reference="Z")
    fig = er.plot()
    fnmr = fig.data[0]
    bg = er.by_group
    assert list(fnmr.x) == bg["group"].tolist()
    assert np.allclose(np.asarray(fnmr.y) + np.asarray(fnmr.error_y.array), bg["fnmr_hi"])
    assert np.allclose(np.asarray(fnmr.y) - np.asarray(fnmr.error_y.arrayminus), bg["fnmr_lo"])
