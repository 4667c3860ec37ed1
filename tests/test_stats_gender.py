"""Gender analyses (faceaudit.stats.gender): the age-adjusted gender contrast against planted effects,
its p-value's null rejection rate, its bootstrap interval against statsmodels' cluster-robust one,
and the impostor-similarity shift against a planted shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
from faceaudit.stats.error_rates import compute_model_rates
from faceaudit.stats.gender import age_regression, gender_age_table, gender_measures, impostor_shift_table
from faceaudit.stats.primary import flip_matrix
from faceaudit.stats.simulate import example_model_data

GROUPS = ("skin=light|gender=male", "skin=light|gender=female", "skin=dark|gender=male", "skin=dark|gender=female")
ATTRS = [("skin_tone", "skin", ["light", "dark"], "light"), ("gender", "gender", ["male", "female"], "male")]
AGE_SLOPE = -0.01  # genuine score per year of apparent age
AGE_GAP = -4.5  # "female" prototypes look 4.5 years younger


def _planted(gender_effect: float, n_seeds: int = 60, seed: int = 0, imp_female_shift: float = 0.0):
    """A crossed design whose genuine score depends on the prototype's apparent age (and on gender by
    ``gender_effect``); female impostor scores shifted by ``imp_female_shift``."""
    rng = np.random.default_rng(seed)
    md = example_model_data(n_seeds=n_seeds, groups=GROUPS, seed=seed, gen_shift={}, edits={"yaw": (-1.0, 1.0)})
    L = md.layout
    female = np.array([g.endswith("female") for g in L.groups])
    age = np.empty((L.S, L.G))
    for gi, g in enumerate(L.groups):
        if not female[gi]:
            age[:, gi] = rng.normal(35.0, 6.0, L.S)
    for gi, g in enumerate(L.groups):
        if female[gi]:
            male_twin = L.groups.index(g.replace("female", "male"))
            age[:, gi] = age[:, male_twin] + AGE_GAP + rng.normal(0.0, 3.0, L.S)
    gen = md.genuine
    seed_effect = rng.normal(0.0, 0.05, L.S)
    gen.score = (0.6 + AGE_SLOPE * (age[gen.seed_a, gen.group] - 35.0) + gender_effect * female[gen.group]
                 + seed_effect[gen.seed_a] + rng.normal(0.0, 0.03, len(gen)))
    gen.ok = np.ones(len(gen), dtype=bool)
    imp = md.impostor
    imp.score = np.where(imp.ok, imp.score + imp_female_shift * female[imp.group], np.nan)
    faces = pd.DataFrame([{"seed": L.seeds[s], "group": g, "edit_attr": "none", "measured_age": age[s, gi],
                           "measured_age_independent": age[s, gi] + rng.normal(0, 2.0)}
                          for s in range(L.S) for gi, g in enumerate(L.groups)])
    W = seed_weights(L.S, 400, bootstrap_rng(seed))
    mr = compute_model_rates(md, W, [0.01])
    return mr, faces, W, flip_matrix(L.S, np.random.default_rng(seed))


def _row(t: pd.DataFrame, metric: str, adjusted: bool, measure: str = "measured_age") -> pd.Series:
    r = t[(t["metric"] == metric) & (t["adjusted"] == adjusted) & (t["age_measure"] == measure)]
    assert len(r) == 1
    return r.iloc[0]


def test_age_only_effect_raw_contrast_is_not_zero_and_the_adjusted_one_covers_zero():
    mr, faces, W, flips = _planted(gender_effect=0.0)
    t = gender_age_table(mr, faces, ATTRS, list(range(mr.md.layout.C)), 0.01, W, 0.95, flips)
    raw, adj = _row(t, "genuine_score_diff", False), _row(t, "genuine_score_diff", True)
    # the raw contrast is the age gap times the age slope: +0.045, confidently non-zero
    assert raw["estimate"] == pytest.approx(AGE_SLOPE * AGE_GAP, abs=0.012)
    assert raw["ci_lo"] > 0 and raw["p_value"] < 0.01
    assert adj["ci_lo"] < 0 < adj["ci_hi"]
    assert abs(adj["estimate"]) < 0.01
    assert adj["age_slope"] == pytest.approx(AGE_SLOPE, abs=0.003)
    assert adj["mean_age_diff"] == pytest.approx(AGE_GAP, abs=1.0)
    assert adj["n_units"] == 2 * 60 and adj["n_seeds"] == 60  # one unit per seed and skin level
    assert set(t["age_classifier"]) == {"faceres age head", "SSR-Net"}


def test_a_planted_gender_effect_is_recovered_at_equal_age():
    effect = -0.03
    mr, faces, W, flips = _planted(gender_effect=effect, seed=1)
    t = gender_age_table(mr, faces, ATTRS, list(range(mr.md.layout.C)), 0.01, W, 0.95, flips)
    adj = _row(t, "genuine_score_diff", True)
    assert adj["ci_lo"] < effect < adj["ci_hi"]
    assert adj["estimate"] == pytest.approx(effect, abs=0.01)
    assert adj["ci_hi"] < 0 and adj["p_value"] < 0.01
    raw = _row(t, "genuine_score_diff", False)
    assert raw["estimate"] == pytest.approx(effect + AGE_SLOPE * AGE_GAP, abs=0.012)  # masked by the age gap


def test_bootstrap_interval_agrees_with_statsmodels_cluster_robust_ols():
    mr, faces, W, flips = _planted(gender_effect=-0.02, seed=2)
    t = gender_age_table(mr, faces, ATTRS, list(range(mr.md.layout.C)), 0.01, W, 0.95, flips)
    for adjusted in (False, True):
        r = _row(t, "genuine_score_diff", adjusted)
        boot_half = (r["ci_hi"] - r["ci_lo"]) / 2
        cluster_half = (r["ci_hi_cluster"] - r["ci_lo_cluster"]) / 2
        assert boot_half == pytest.approx(cluster_half, rel=0.3)
        assert r["ci_lo_cluster"] < r["estimate"] < r["ci_hi_cluster"]


def test_estimate_is_statsmodels_ols_intercept_on_the_per_seed_differences():
    mr, faces, W, flips = _planted(gender_effect=0.01, seed=3)
    L = mr.md.layout
    t = gender_age_table(mr, faces, ATTRS, list(range(L.C)), 0.01, W, 0.95, flips)
    # independent route: per (seed, skin) mean genuine score from the pairs, then OLS
    gen = mr.md.genuine
    g = pd.DataFrame({"seed": gen.seed_a, "group": np.array(L.groups)[gen.group], "score": gen.score})
    mean = g.groupby(["seed", "group"])["score"].mean().unstack()
    age = faces.assign(seed=lambda d: [list(L.seeds).index(s) for s in d["seed"]]).pivot(index="seed", columns="group",
                                                                                    values="measured_age")
    dy = np.concatenate([mean[f"skin={s}|gender=female"] - mean[f"skin={s}|gender=male"] for s in ("light", "dark")])
    dx = np.concatenate([age[f"skin={s}|gender=female"] - age[f"skin={s}|gender=male"] for s in ("light", "dark")])
    fit = sm.OLS(dy, sm.add_constant(dx)).fit()
    assert _row(t, "genuine_score_diff", True)["estimate"] == pytest.approx(fit.params[0], abs=1e-10)
    assert _row(t, "genuine_score_diff", False)["estimate"] == pytest.approx(dy.mean(), abs=1e-10)


def test_age_adjusted_pvalue_rejects_at_the_nominal_rate_under_an_age_only_effect():
    rng = np.random.default_rng(7)
    n_seeds, reps = 30, 300
    seed = np.repeat(np.arange(n_seeds), 3)
    W = seed_weights(n_seeds, 20, bootstrap_rng(0))
    flips = flip_matrix(n_seeds, np.random.default_rng(1), 1999)
    p = []
    for _ in range(reps):
        d_age = rng.normal(-4.5, 3.0, len(seed))
        d_y = 0.01 * d_age + rng.normal(0, 0.02, n_seeds)[seed] + rng.normal(0, 0.02, len(seed))
        p.append(age_regression(seed, d_y, d_age, W, 0.95, flips)["p_value"])
    rate = float(np.mean(np.array(p) < 0.05))
    assert 0.02 <= rate <= 0.085, rate  # binomial 99% range around 0.05 for 300 draws
    # and the unadjusted test rejects nearly always here: the age gap is the whole raw effect
    p_raw = age_regression(seed, d_y, d_age, W, 0.95, flips, adjusted=False)["p_value"]
    assert p_raw < 0.01


def test_impostor_shift_recovers_a_planted_female_impostor_score_shift():
    mr, faces, W, flips = _planted(gender_effect=0.0, seed=4, imp_female_shift=0.1)
    t = impostor_shift_table(mr, ATTRS, list(range(mr.md.layout.C)), 0.01, 0.95)
    s = t[(t["metric"] == "impostor_score_mean") & (t["scope"] == "all")].iloc[0]
    assert s["ci_lo"] < 0.1 < s["ci_hi"] and s["estimate"] == pytest.approx(0.1, abs=0.02)
    imp = mr.md.impostor
    female = np.array([g.endswith("female") for g in mr.md.layout.groups])[imp.group]
    assert s["value_level"] == pytest.approx(np.nanmean(imp.score[imp.ok & female]), abs=1e-12)
    assert s["n_level"] == int((imp.ok & female).sum())
    f = t[(t["metric"] == "fmr") & (t["scope"] == "all")].iloc[0]
    assert f["estimate"] > 0 and f["events_level"] > f["events_ref"]
    assert f["ci_lo"] > 0
    # the FMR p-value is the run's sign test of the discordant seed pairs: the gender marginal contrast's
    from faceaudit.stats.intersectional import intersectional_contrasts

    c = intersectional_contrasts(mr, ATTRS, 0.95)
    m = c[(c["contrast"] == "marginal") & (c["attribute"] == "gender") & (c["metric"] == "fmr_diff")
          & (c["condition"] == "all")].iloc[0]
    assert f["p_value"] == pytest.approx(m["p_value"], rel=1e-12)
    assert f["estimate"] == pytest.approx(m["estimate"], rel=1e-9)
    assert set(t["scope"]) == {"all", "skin=light", "skin=dark"}


def test_no_shift_planted_gives_an_interval_around_zero():
    mr, faces, W, flips = _planted(gender_effect=0.0, seed=5)
    t = impostor_shift_table(mr, ATTRS, list(range(mr.md.layout.C)), 0.01, 0.95)
    s = t[(t["metric"] == "impostor_score_mean") & (t["scope"] == "all")].iloc[0]
    assert s["ci_lo"] < 0 < s["ci_hi"]


def test_gender_measures_reads_either_validation_column_name():
    assert gender_measures(["measured_gender_pmale", "measured_gender_pmale_validation"])["validation"] == \
        "measured_gender_pmale_validation"
    assert gender_measures(["measured_gender_pmale_independent"]) == {
        "placement": None, "validation": "measured_gender_pmale_independent"}
    assert gender_measures(["x"]) == {"placement": None, "validation": None}
