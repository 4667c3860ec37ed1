"""Simulated raters with known parameters, through the real store and export.

The simulation knows each pair's true similarity, each rater's bias and who is careless, so the
export's consensus scores, CIs, Krippendorff's alpha and attention-check flags are checked against
the truth, and the human-vs-machine numbers against independent computations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from faceaudit.annotate.plan import PlanSpec
from faceaudit.annotate.simulate import RaterModel, expected_alpha, expected_consensus, plan_raters, simulate_annotations
from faceaudit.api import annotate_export
from faceaudit.stats import human

MODEL = RaterModel(noise_sd=0.12, bias_sd=0.05, careless_share=0.125, seed=3)
SPEC = PlanSpec(n_raters=16, raters_per_item=8, pairs_per_cell=6, images_per_cell=1, seed=3)


@pytest.fixture(scope="module")
def simulated(synthetic_run_template, tmp_path_factory):
    import shutil

    run = shutil.copytree(synthetic_run_template, tmp_path_factory.mktemp("sim") / "run")
    panel, truth = simulate_annotations(run, SPEC, MODEL)
    summary = annotate_export(run)
    return run, panel, truth, summary


def test_consensus_covers_the_truth(simulated):
    run, panel, truth, _ = simulated
    h = pd.read_parquet(run / "results" / "human_identity.parquet")
    assert len(h) >= 300 and (h["n_raters"] >= 5).all()
    target = expected_consensus(truth[h["pair_id"]].to_numpy(), MODEL)
    covered = (h["ci_lo"] <= target) & (target <= h["ci_hi"])
    assert covered.mean() >= 0.93, covered.mean()
    # intervals are informative, not [0, 1]
    assert (h["ci_hi"] - h["ci_lo"]).mean() < 0.3
    # the consensus tracks the truth across pairs
    assert stats.pearsonr(h["consensus"], target).statistic > 0.9


def test_consensus_and_interval_by_hand(simulated):
    run, *_ = simulated
    ann = pd.read_parquet(run / "annotations.parquet")
    q = pd.read_parquet(run / "results" / "rater_quality.parquet")
    h = pd.read_parquet(run / "results" / "human_identity.parquet").set_index("pair_id")
    keep = set(q.loc[~q["flagged"], "rater"])
    same = ann[(ann["question"] == "same") & (ann["check_kind"] == "") & ann["rater"].isin(keep)]
    x = (same["value"].astype(float) - 1) / 4
    by = x.groupby(same["item"].astype(int))
    assert np.allclose(by.mean().sort_index(), h["consensus"].sort_index())
    # dispersion: Pearson estimator pooled over pairs strictly inside (0, 1)
    m, v, n = by.mean(), by.var(), by.size()
    inner = (m > 0) & (m < 1) & (n > 1)
    phi = ((n - 1) * v / (m * (1 - m)))[inner].sum() / (n - 1)[inner].sum()
    assert np.isclose(h["dispersion"].iloc[0], phi)
    # Wilson score interval with n / phi trials, written out
    z = stats.norm.ppf(0.975)
    ne = n / phi
    centre = (m + z**2 / (2 * ne)) / (1 + z**2 / ne)
    half = z / (1 + z**2 / ne) * np.sqrt(m * (1 - m) / ne + z**2 / (4 * ne**2))
    assert np.allclose((centre - half).sort_index(), h["ci_lo"].sort_index())
    assert np.allclose((centre + half).sort_index(), h["ci_hi"].sort_index())


def test_attention_checks_find_the_careless_raters(simulated):
    run, panel, *_ = simulated
    q = pd.read_parquet(run / "results" / "rater_quality.parquet").merge(panel, on="rater")
    assert q["careless"].sum() == 2
    assert (q["flagged"] == q["careless"]).all(), q[["rater", "careless", "check_pass_rate"]]
    assert (q.loc[~q["careless"], "check_pass_rate"] == 1.0).all()


def test_alpha_matches_the_simulated_agreement(simulated):
    run, panel, truth, _ = simulated
    ann = pd.read_parquet(run / "annotations.parquet")
    h = pd.read_parquet(run / "results" / "human_identity.parquet")
    s = truth[h["pair_id"]].to_numpy()
    agree = pd.read_parquet(run / "results" / "human_agreement.parquet").set_index(["question", "level"])
    careful_alpha = agree.loc[("same", "interval"), "alpha"]
    assert abs(careful_alpha - expected_alpha(s, MODEL)) < 0.04, (careful_alpha, expected_alpha(s, MODEL))
    # with the careless raters kept, agreement drops as the mixture model predicts
    all_alpha = human.agreement(ann).set_index(["question", "level"]).loc[("same", "interval"), "alpha"]
    mixed = expected_alpha(s, MODEL, careless_share=panel["careless"].mean())
    assert abs(all_alpha - mixed) < 0.05 and all_alpha < careful_alpha - 0.1, (all_alpha, mixed)
    # image questions: answers are right 80% of the time, so agreement is positive but far from 1
    for question in ("gender", "age", "skin", "expression", "realism"):
        a = agree.xs(question, level="question")["alpha"].iloc[0]
        assert 0.3 < a < 0.9, (question, a)


def test_human_vs_machine_against_independent_computations(simulated):
    run, *_ = simulated
    hvm = pd.read_parquet(run / "results" / "human_vs_machine.parquet")
    h = pd.read_parquet(run / "results" / "human_identity.parquet")
    er = pd.read_parquet(run / "results" / "error_rates.parquet")
    assert set(hvm["model"]) == {"alpha", "beta"} and set(hvm["group"]) == set(h["group"]) | {"all"}
    for model in ("alpha", "beta"):
        thr = er[(er["model"] == model)]["threshold"].iloc[0]
        sc = pd.read_parquet(run / "scores" / f"{model}.parquet")
        d = h.merge(sc, on="pair_id").query("status == 'ok'")
        row = hvm[(hvm["model"] == model) & (hvm["group"] == "all")].iloc[0]
        y = d["consensus"] >= 0.5
        u = stats.mannwhitneyu(d.loc[y, "score"], d.loc[~y, "score"]).statistic
        assert np.isclose(row["auc"], u / (y.sum() * (~y).sum()))
        assert np.isclose(row["spearman"], d["score"].corr(d["consensus"], method="spearman"))
        gen = d[d["kind"] == "genuine"]
        assert np.isclose(row["machine_fnmr"], (gen["score"] < thr).mean())
        assert np.isclose(row["human_fnmr"], (gen["consensus"] < 0.5).mean())
        # filtering / weighting genuine pairs by the human consensus
        pairs = pd.read_parquet(run / "pairs.parquet")
        rated = pairs[pairs["pair_id"].isin(gen["pair_id"])].merge(gen[["pair_id", "score"]], on="pair_id")
        miss = (rated["score"] < thr).astype(float)
        for mode, col in (("filter", "machine_fnmr_confirmed"), ("weight", "machine_fnmr_weighted")):
            w = human.genuine_weights(rated, h, mode=mode)
            assert np.isclose(row[col], (w * miss).sum() / w.sum()), mode
        # models agree with humans far better than chance on these planted scores
        assert row["auc"] > 0.8


def test_plan_raters_shows_narrower_intervals_with_more_raters():
    t = plan_raters(n_pairs=300, raters_per_pair=(3, 6, 12), model=RaterModel(seed=1))
    widths = t["mean_ci_width"].to_numpy()
    assert widths[0] > widths[1] > widths[2]
    # roughly 1/sqrt(k): doubling raters shrinks the width by about 1/sqrt(2)
    assert 0.6 < widths[2] / widths[1] < 0.8
    assert (t["coverage"] >= 0.9).all()
