"""The declared primary analysis (issue 18): leakage, the primary family, one p-value method, Wilson
intervals on effective counts, ratio reportability, detector-level FTE rows."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from faceaudit.stats.analyze import analyze_run, detector_rows
from faceaudit.stats.primary import (PRIMARY_POOL, discordant_design_effect, discordant_pvalue, flip_matrix,
                                     leakage_table, seed_flip_pvalue, wilson_effective)
from faceaudit.stats.simulate import SimSpec, write_sim_run

ALPHA = 0.05


def _binomial_ceiling(n: int, rate: float = ALPHA) -> float:
    """Largest rejection rate out of ``n`` null tests compatible with ``rate`` (one-sided 99.9%)."""
    return binom.ppf(0.999, n, rate) / n


# ---------------------------------------------------------------------------------------------
# leakage: the skin gap is between skin levels, also in a crossed skin x gender design


def _crossed_faces(n_seeds: int = 6) -> pd.DataFrame:
    """Prototype ITA: light 30, intermediate -10, dark -55; gender cells differ by ~2 deg (the gap the old
    card took for the skin gap); exposure +2 adds 60 deg of ITA, yaw +2 adds 1 deg."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(n_seeds):
        for skin, ita in (("light", 30.0), ("intermediate", -10.0), ("dark", -55.0)):
            for gender, d in (("female", 0.0), ("male", 1.94)):
                group = f"skin_tone={skin}|gender={gender}"
                base = ita + d + rng.normal(0, 0.01)
                for attr, lv, shift in (("none", 0.0, 0.0), ("exposure", 2.0, 60.0), ("yaw", 2.0, 1.0)):
                    rows.append({"seed": seed, "group": group, "skin_tone": skin, "gender": gender,
                                 "edit_attr": attr, "edit_level": lv, "measured_skin_ita": base + shift})
    return pd.DataFrame(rows)


def _old_skin_gap(faces: pd.DataFrame) -> float:
    # the card's former `_skin_gap`: prototype means grouped by *cell*
    means = np.sort(faces[faces["edit_attr"] == "none"].groupby("group")["measured_skin_ita"].mean().to_numpy())
    return float(np.diff(means).min())


def test_leakage_gap_is_between_skin_levels_in_a_crossed_design():
    faces = _crossed_faces()
    t = leakage_table(faces, ["skin_tone", "gender"], {"skin_tone": ["light", "intermediate", "dark"],
                                                        "gender": ["female", "male"]}, 0.25)
    skin = t[t["attribute"] == "skin_tone"].set_index("edit_attr")
    # the smallest gap between adjacent skin LEVELS (light 30.97 vs intermediate -9.03: 40), not 1.94
    assert skin["level_gap"].iloc[0] == pytest.approx(40.0, abs=0.05)
    assert _old_skin_gap(faces) == pytest.approx(1.94, abs=0.05)  # what the old logic used
    assert skin.loc["exposure", "share"] == pytest.approx(60.0 / 40.0, rel=1e-3)
    assert (t["share"] < 10).all()  # no "3454.8%"
    assert not skin.loc["exposure", "pooled"] and skin.loc["yaw", "pooled"]
    # the old gap would have flagged every edit, yaw included
    assert 1.0 / _old_skin_gap(faces) > 0.25


def test_leakage_decides_the_pool_and_is_written(tmp_path):
    spec = SimSpec(n_seeds=10, groups=("skin=light", "skin=dark"), edits={"lighting": (-1.0, 1.0)})
    root = write_sim_run(tmp_path, spec, np.random.default_rng(1), n_boot=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = analyze_run(root)
    assert (root / "results" / "leakage.parquet").exists()
    assert list(out["leakage"].columns) == ["attribute", "edit_attr", "edit_level", "measure", "shift", "level_gap",
                                            "share", "pooled"]
    c = out["contrasts"]
    assert PRIMARY_POOL in set(c["condition"])
    summary = json.loads((root / "results" / "summary.json").read_text())
    fam = summary["primary_family"]
    assert fam["size"] == int((c["family"] == "primary").sum()) and fam["method"] == "holm"
    assert sum(m["primary_family"]["size"] for m in summary["models"].values()) == fam["size"]
    assert set(summary["methods"]) == {"rates", "contrasts", "p_values"}
    assert summary["ci_method"] == out["error_rates"]["ci_method"].iloc[0]


# ---------------------------------------------------------------------------------------------
# one multiplicity family


@pytest.mark.parametrize("adjust", ["holm", "fdr_bh"])
def test_primary_p_adjusted_is_the_correction_over_the_primary_rows_alone(tmp_path, adjust):
    spec = SimSpec(n_seeds=12, groups=("skin=light", "skin=intermediate", "skin=dark"),
                   edits={"lighting": (-1.0, 1.0), "yaw": (-1.0, 1.0)}, gen_shift={"skin=dark": -0.1})
    root = write_sim_run(tmp_path, spec, np.random.default_rng(2), n_boot=100)
    import yaml

    proto = yaml.safe_load((root / "protocol.yaml").read_text())
    proto["analysis"]["adjust"] = adjust
    (root / "protocol.yaml").write_text(yaml.safe_dump(proto))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = analyze_run(root, write=False)["contrasts"]
    prim = c[c["family"] == "primary"]
    assert len(prim) and set(prim["metric"]) == {"fnmr_diff", "fmr_diff"}
    assert set(prim["condition"]) >= {PRIMARY_POOL, "lighting=+1"} and "all" not in set(prim["condition"])
    assert np.allclose(prim["p_adjusted"], multipletests(prim["p_value"], method=adjust)[1])
    expl = c[(c["family"] == "exploratory") & c["p_value"].notna()]
    assert np.allclose(expl["p_adjusted"], multipletests(expl["p_value"], method=adjust)[1])
    # FTE contrasts are detector-level and exploratory
    assert (c.loc[c["metric"] == "fte_rate_diff", "family"] == "exploratory").all()


# ---------------------------------------------------------------------------------------------
# one p-value method, valid at small counts


def test_zero_vs_two_false_matches_is_not_significant():
    # 0 false matches at the level, 2 at the reference, on two unrelated seed pairs: exact test 0.5
    deff = discordant_design_effect(np.array([-1.0, -1.0]), np.array([0, 2]), np.array([1, 3]), 10)
    assert discordant_pvalue(0, 2, deff) == pytest.approx(0.5)
    # the same two on one seed: not independent, even less evidence
    deff = discordant_design_effect(np.array([-1.0, -1.0]), np.array([0, 0]), np.array([1, 2]), 10)
    assert discordant_pvalue(0, 2, deff) >= 0.5


def test_few_fnmr_events_give_the_exact_flip_pvalue():
    # 2 seeds with one false non-match each at the level, none at the reference: 4 flips, 2 as extreme
    num_l, num_r, den = np.zeros(30), np.zeros(30), np.full(30, 8.0)
    num_l[[3, 7]] = 1
    assert seed_flip_pvalue(num_l, den, num_r, den) == pytest.approx(0.5)


def test_seed_flip_test_null_rejection_rate():
    # clustered counts (a seed random effect shared by both renderings, and a seed x group one that is
    # exchangeable between them): the null of no protected effect
    rng = np.random.default_rng(3)
    flips = flip_matrix(40, np.random.default_rng(4), 999)
    p = []
    for _ in range(400):
        seed_eff = rng.normal(-2.5, 0.8, 40)
        n = rng.integers(4, 12, 40).astype(float)
        pr = lambda: 1 / (1 + np.exp(-(seed_eff + rng.normal(0, 0.5, 40))))  # noqa: E731
        p.append(seed_flip_pvalue(rng.binomial(n.astype(int), pr()), n, rng.binomial(n.astype(int), pr()), n, flips))
    rate = np.mean(np.array(p) < ALPHA)
    assert rate <= _binomial_ceiling(400), rate


def test_fmr_sign_test_null_rejection_rate_with_seed_clustering():
    # impostor seed pairs of 30 seeds in two groups; each seed has its own propensity to falsely match
    # in each group, drawn independently (exchangeable between the groups under the null)
    rng = np.random.default_rng(5)
    S = 30
    lo, hi = np.triu_indices(S, 1)
    p, p_independent = [], []
    for _ in range(400):
        a = rng.normal(-3.0, 1.5, (2, S))  # a few "lamb" seeds per group, ~15 discordant pairs
        logit = a[:, lo] + a[:, hi]
        hits = rng.random(logit.shape) < 1 / (1 + np.exp(-logit))
        only_g, only_r = hits[0] & ~hits[1], hits[1] & ~hits[0]
        sign = np.concatenate([np.ones(only_g.sum()), -np.ones(only_r.sum())])
        slo = np.concatenate([lo[only_g], lo[only_r]])
        shi = np.concatenate([hi[only_g], hi[only_r]])
        deff = discordant_design_effect(sign, slo, shi, S)
        p.append(discordant_pvalue(int(only_g.sum()), int(only_r.sum()), deff))
        p_independent.append(discordant_pvalue(int(only_g.sum()), int(only_r.sum())))
    rate = np.mean(np.array(p) < ALPHA)
    assert rate <= _binomial_ceiling(400), rate
    # the seed-pair design effect is what keeps it valid: treating seed pairs as independent rejects
    # far too often on the same data
    assert np.mean(np.array(p_independent) < ALPHA) > _binomial_ceiling(400)


def test_null_rejection_rate_through_the_run_code():
    # the whole path (tables -> rates -> contrasts) on designs with no effect of the protected attribute
    from faceaudit.stats.bootstrap import seed_weights
    from faceaudit.stats.contrasts import model_contrasts
    from faceaudit.stats.data import make_layout, prepare_model
    from faceaudit.stats.error_rates import compute_model_rates
    from faceaudit.stats.simulate import simulate_run_tables

    spec = SimSpec(n_seeds=30, groups=("skin=light", "skin=dark"), edits={"lighting": (-1.0, 1.0)}, gen_mean=0.40,
                   imp_mean=0.10)
    rng = np.random.default_rng(6)
    flips = flip_matrix(30, np.random.default_rng(7), 999)
    p = []
    for _ in range(40):
        tb = simulate_run_tables(spec, rng)
        layout = make_layout(tb["faces"], list(spec.groups))
        md = prepare_model("sim", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
        mr = compute_model_rates(md, seed_weights(layout.S, 100, rng), [0.01])
        c = model_contrasts(mr, "skin_tone", "skin=light", 0.95, pool=[0, 1, 2], flips=flips)
        p += c.loc[c["metric"].isin(["fnmr_diff", "fmr_diff", "genuine_score_diff"]), "p_value"].tolist()
    p = np.array(p)
    assert np.mean(p < ALPHA) <= _binomial_ceiling(len(p)), np.mean(p < ALPHA)


# ---------------------------------------------------------------------------------------------
# intervals at 0-10 events


def test_wilson_on_effective_counts_is_statsmodels_wilson_without_clustering():
    for k, n in [(0, 35473), (1, 50), (3, 40), (10, 200), (50, 100)]:
        p = k / n
        lo, hi = wilson_effective([k], [n], [p * (1 - p) / n], 0.95)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (lo[0], hi[0]) == pytest.approx(ref, abs=1e-12)
    lo, hi = wilson_effective([0], [35473], [0.0], 0.95)
    assert lo[0] == 0 and hi[0] > 5e-5  # not "[0%, 0%]"


def test_wilson_on_effective_counts_keeps_coverage_with_clustered_few_events():
    rng = np.random.default_rng(8)
    S, m = 40, 25
    truth_p = []
    covered = []
    for _ in range(1000):
        ps = rng.beta(0.3, 60, S)  # overdispersed per-seed rates, mean about 0.005 (a handful of events)
        k = rng.binomial(m, ps)
        n = np.full(S, m)
        p_hat = k.sum() / n.sum()
        # seed-cluster (ratio-estimator) variance of the pooled rate
        var = S / (S - 1) * np.sum((k - p_hat * n) ** 2) / n.sum() ** 2
        lo, hi = wilson_effective([k.sum()], [n.sum()], [var], 0.95)
        truth = 0.3 / 60.3
        truth_p.append(truth)
        covered.append(lo[0] <= truth <= hi[0])
    assert np.mean(covered) >= 0.92, np.mean(covered)


# ---------------------------------------------------------------------------------------------
# counts, ratios, detectors


def test_contrast_rows_carry_counts_and_ratio_reportability(tmp_path):
    spec = SimSpec(n_seeds=10, groups=("skin=light", "skin=dark"), edits={"lighting": (-1.0, 1.0)})
    root = write_sim_run(tmp_path, spec, np.random.default_rng(9), n_boot=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = analyze_run(root, write=False)
    c = out["contrasts"]
    rates = c[c["metric"].isin(["fnmr_diff", "fmr_diff", "fnmr_ratio", "fmr_ratio"])]
    assert rates[["events", "n", "events_ref", "n_ref"]].notna().all().all()
    ratios = c[c["metric"].str.endswith("ratio")]
    assert (ratios["n_events_min"] == ratios[["events", "events_ref"]].min(axis=1)).all()
    assert (ratios["reportable"] == (ratios["n_events_min"] >= 10)).all()
    assert (ratios["smoothing"] == "(events + 0.5) / (n + 1)").all()
    f = out["fairness"]
    fr = f[f["metric"].str.endswith("max_min_ratio")]
    assert fr["reportable"].notna().all() and (fr["smoothing"] == "(events + 0.5) / (n + 1)").all()
    er = out["error_rates"]
    assert er["ci_method"].str.startswith("wilson").all()
    zero = er[(er["n_false_match"] == 0) & (er["n_impostor"] > 0)]
    assert (zero["fmr_hi"] > 0).all()


def test_fte_rows_once_per_detector():
    c = pd.DataFrame({"model": ["dlib", "sface", "other", "dlib"],
                      "metric": ["fte_rate_diff", "fte_rate_diff", "fte_rate_diff", "fnmr_diff"],
                      "estimate": [0.1, 0.1, 0.3, 0.0]})
    fte = {"dlib": np.array([0, 1, 0]), "sface": np.array([0, 1, 0]), "other": np.array([1, 1, 0])}
    out = detector_rows(c, fte, {"dlib": "yunet", "sface": "yunet"})
    f = out[out["metric"] == "fte_rate_diff"]
    assert f["model"].tolist() == ["detector:yunet", "detector:other"]
    assert f["models"].tolist() == ["dlib,sface", "other"]


def test_explicit_primary_conditions(tmp_path):
    import yaml

    spec = SimSpec(n_seeds=10, groups=("skin=light", "skin=dark"), edits={"lighting": (-1.0, 1.0), "yaw": (-1.0, 1.0)})
    root = write_sim_run(tmp_path, spec, np.random.default_rng(10), n_boot=100)
    proto = yaml.safe_load((root / "protocol.yaml").read_text())
    proto["analysis"]["primary"] = {"metrics": ["fnmr_diff"], "conditions": ["lighting=+1", "lighting=-1"]}
    (root / "protocol.yaml").write_text(yaml.safe_dump(proto))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = analyze_run(root, write=False)["contrasts"]
    prim = c[c["family"] == "primary"]
    assert set(prim["condition"]) == {"lighting=+1", "lighting=-1", PRIMARY_POOL}
    assert set(prim["metric"]) == {"fnmr_diff"}
    # the pool is exactly the listed conditions: its counts are their sums
    cond = c[(c["metric"] == "fnmr_diff") & c["condition"].isin(["lighting=+1", "lighting=-1"])]
    pool = prim[prim["condition"] == PRIMARY_POOL].iloc[0]
    assert pool["n"] == cond["n"].sum() and pool["events"] == cond["events"].sum()
