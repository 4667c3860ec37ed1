"""The intersectional design (issue #7): skin tone x perceived gender on real DCGAN faces.

One small real run (24 seeds, skin x gender = 6 cells, yaw/age/smile edits, dlib) checks that
every kept seed is in every cell, that the gender levels are what the classifiers say, that
exposure is held across both attributes, that the age edit moves both age models, and that the
analysis reports marginal effects and interactions. A planted effect on one cell only
(``skin=dark|gender=female``: Gaussian noise on dlib's embeddings of that cell) must come out as a
significant interaction; the same noise on every cell must not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from faceaudit import api, pipeline
from faceaudit.models.human_models import missing_reason

_MISSING = missing_reason("faceres") or missing_reason("gender")
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

PROTOCOL = {
    "name": "skin-gender-test",
    "seed": 0,
    "n_seeds": 24,
    "protected": [{"attribute": "skin_tone", "reference": "light"}, {"attribute": "gender", "reference": "male"}],
    "edits": [{"attribute": "yaw", "levels": [-2, -1, 1, 2]}, {"attribute": "age", "levels": [-1.5, 1.5]},
              {"attribute": "smile", "levels": [-1, 1]}],
    "models": ["dlib"],
    "analysis": {"target_fmr": [0.01], "n_boot": 200, "policy": "protocols/policies/default.yaml"},
}
CELLS = [f"skin={s}|gender={g}" for s in ("light", "intermediate", "dark") for g in ("female", "male")]
SIGMA = 0.04


@pytest.fixture(scope="module")
def gender_run(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("gender")
    (root / "p.yaml").write_text(yaml.safe_dump(PROTOCOL))
    ctx = pipeline.audit(root / "p.yaml", root / "run", progress=False)
    return ctx.run.root


def test_every_kept_seed_is_in_every_cell(gender_run):
    faces = pd.read_parquet(gender_run / "faces.parquet")
    gen = json.loads((gender_run / "results" / "generation.json").read_text())
    assert sorted(faces["group"].unique()) == sorted(CELLS)
    per_seed = faces[faces["edit_attr"] == "none"].groupby("seed")["group"].nunique()
    assert (per_seed == 6).all()
    assert gen["n_seeds_kept"] == faces["seed"].nunique() >= 12
    # excluded seeds are counted, each with a reason
    assert gen["n_seeds_excluded"] == 24 - gen["n_seeds_kept"]
    assert {e["seed"] for e in gen["exclusions"]} == set(gen["excluded_seeds"])
    assert all(e["reason"] for e in gen["exclusions"])
    # 1 prototype + 8 edits per cell
    assert (faces.groupby(["seed", "group"]).size() == 9).all()


def test_gender_levels_are_what_the_classifiers_say(gender_run):
    m = pd.read_parquet(gender_run / "results" / "manipulation_check.parquet")
    g = m[m["edit_attr"] == "gender"].set_index(["edit_label", "measure"])["mean_change"]
    # the measuring classifier (faceres) puts >= 90% of the kept prototypes in their level
    assert g[("female vs male", "in_bin")] >= 0.9 and g[("male (reference)", "in_bin")] >= 0.9
    # the independent classifier (oarriaga) sees the male level as more male for >= 75% of seeds
    assert g[("female vs male", "independent_order")] >= 0.75
    assert g[("female vs male", "measured_gender_pmale_independent")] < 0


def test_exposure_is_held_across_skin_and_gender(gender_run):
    faces = pd.read_parquet(gender_run / "faces.parquet")
    p = faces[faces["edit_attr"] == "none"].set_index(["seed", "gender", "skin_tone"])["measured_border_luma"]
    by_seed = p.groupby(level="seed")
    spread = by_seed.max() - by_seed.min()  # over all six cells of a seed
    # each prototype within tolerance/2 (2.5/255) of the seed's own face, so any two within 5/255
    assert spread.max() <= 5.0 + 1e-9, spread.sort_values().tail()


def test_age_edit_is_monotone_in_both_age_models(gender_run):
    faces = pd.read_parquet(gender_run / "faces.parquet")
    protos = faces[faces["edit_attr"] == "none"].set_index(["seed", "group"])
    for col in ("measured_age", "measured_age_independent"):
        means = [protos[col].mean()]
        for level in (-1.5, 1.5):
            e = faces[(faces["edit_attr"] == "age") & (faces["edit_level"] == level)].set_index(["seed", "group"])
            means.append(e[col].mean())
        young, proto, old = means[1], means[0], means[2]
        assert young < proto < old, (col, means)


def test_marginal_and_interaction_rows(gender_run):
    c = pd.read_parquet(gender_run / "results" / "contrasts.parquet")
    assert set(c["contrast"]) == {"cell", "marginal", "interaction"}
    cell = c[c["contrast"] == "cell"]
    assert set(cell["group"]) == set(CELLS) - {"skin=light|gender=male"}
    marg = c[(c["contrast"] == "marginal") & (c["condition"] == "all")]
    assert set(zip(marg["attribute"], marg["level"])) == {("skin_tone", "intermediate"), ("skin_tone", "dark"),
                                                         ("gender", "female")}
    # marginal effects are also given within each edit condition and over the primary pool, and they are
    # the primary family of a crossed design (issue 18)
    per_cond = c[(c["contrast"] == "marginal") & ~c["condition"].isin(["all", "primary_pool"])]
    assert set(per_cond["attribute"].str.split("|").str[0]) == {"skin_tone", "gender"}
    assert "primary_pool" in set(c.loc[c["contrast"] == "marginal", "condition"])
    assert set(c.loc[c["family"] == "primary", "contrast"]) == {"marginal"}
    inter = c[c["contrast"] == "interaction"]
    assert set(inter["level"]) == {"intermediate:female", "dark:female"}
    assert set(inter["metric"]) == {"fnmr_interaction", "fnmr_ratio_interaction", "fmr_interaction",
                                    "genuine_score_interaction"}
    assert inter["p_adjusted"].notna().all() and (inter["ci_lo"] <= inter["ci_hi"]).all()


def test_interaction_equals_difference_of_cell_contrasts(gender_run):
    """The interaction's point estimate is the difference of two cell contrasts' point estimates."""
    c = pd.read_parquet(gender_run / "results" / "contrasts.parquet")
    cell = c[(c["contrast"] == "cell") & (c["metric"] == "genuine_score_diff") & (c["condition"] == "all")].set_index("group")
    # vs the reference cell light|male: (dark,female - light,female) - (dark,male - light,male)
    want = (cell.loc["skin=dark|gender=female", "estimate"] - cell.loc["skin=light|gender=female", "estimate"]
            - cell.loc["skin=dark|gender=male", "estimate"])
    got = c[(c["metric"] == "genuine_score_interaction") & (c["level"] == "dark:female")]["estimate"].item()
    assert got == pytest.approx(want, abs=1e-12)


def _audit_with_noise(run: Path, out: Path, groups):
    from faceaudit.models.noisy import NoisyRecognizer
    from faceaudit.models.registry import load_model

    out.mkdir()
    for name in ("protocol.yaml", "faces.parquet", "images"):
        src = run / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, out / name)
    model = NoisyRecognizer(load_model("dlib", device="cpu"), SIGMA, groups=groups, seed=1)
    api.embed(out, progress=False, models=[model])
    api.score(out, models=[model])
    api.analyze(out)
    c = api.load_run(out).contrasts
    return c[(c["contrast"] == "interaction") & (c["level"] == "dark:female")].set_index("metric")


def test_planted_cell_effect_is_an_interaction(gender_run, tmp_path):
    one_cell = _audit_with_noise(gender_run, tmp_path / "one", {"skin=dark|gender=female"})
    every_cell = _audit_with_noise(gender_run, tmp_path / "all", None)
    planted = one_cell.loc["fnmr_interaction"]
    assert planted["estimate"] > 0 and planted["ci_lo"] > 0
    assert planted["p_adjusted"] < 0.05, planted
    assert one_cell.loc["genuine_score_interaction", "p_adjusted"] < 0.05
    # the same noise everywhere changes every cell alike: no interaction
    for metric in ("fnmr_interaction", "genuine_score_interaction"):
        assert every_cell.loc[metric, "p_adjusted"] >= 0.05, every_cell.loc[metric]
    assert abs(every_cell.loc["fnmr_interaction", "estimate"]) < planted["estimate"] / 2
    assert np.isfinite(every_cell["estimate"]).all()


def test_leakage_gaps_are_between_levels_of_one_attribute(gender_run):
    """Issue 18: in the crossed design the skin gap is between skin levels (tens of degrees of ITA),
    never between gender cells (the old card's 1.94 deg gap gave shares of thousands of percent)."""
    leak = pd.read_parquet(gender_run / "results" / "leakage.parquet")
    faces = pd.read_parquet(gender_run / "faces.parquet")
    skin = leak[leak["attribute"] == "skin_tone"]
    assert len(skin)
    protos = faces[faces["edit_attr"] == "none"]
    level_means = protos.groupby(["skin_tone", "gender"])["measured_skin_ita"].mean().groupby(level=0).mean()
    assert skin["level_gap"].iloc[0] == pytest.approx(np.diff(np.sort(level_means.to_numpy())).min())
    assert (skin["level_gap"] > 10).all()
    assert (leak["share"].dropna() < 10).all()  # no share above 1000%
    if "measured_gender_pmale" in faces.columns:
        assert set(leak["attribute"]) == {"skin_tone", "gender"}


# ---------------------------------------------------------------------------------------------
# gender analyses of issue 18: placement check, age-adjusted contrast, impostor shift, section 9, gate


def _pool_conditions(run: Path) -> set[str]:
    leak = pd.read_parquet(run / "results" / "leakage.parquet")
    excluded = set(leak.loc[~leak["pooled"].astype(bool), "edit_attr"])
    faces = pd.read_parquet(run / "faces.parquet")
    return set(faces["edit_attr"].astype(str)) - excluded


def test_gender_placement_agreement_is_recomputed_from_the_faces(gender_run):
    t = pd.read_parquet(gender_run / "results" / "gender_placement.parquet").set_index("level")
    faces = pd.read_parquet(gender_run / "faces.parquet")
    proto = faces[faces["edit_attr"] == "none"]
    vcol = next(c for c in ("measured_gender_pmale_validation", "measured_gender_pmale_independent") if c in faces.columns)
    for level, side in (("female", lambda p: p < 0.5), ("male", lambda p: p >= 0.5)):
        d = proto[proto["gender"] == level]
        assert t.loc[level, "n_prototypes"] == len(d)
        assert t.loc[level, "agree_share"] == pytest.approx(side(d[vcol].dropna()).mean())
    assert t["placed_by"].iloc[0] in ("faceres", "oarriaga") and t["validated_by"].iloc[0] != t["placed_by"].iloc[0]


def test_age_adjusted_gender_contrast_rows(gender_run):
    t = pd.read_parquet(gender_run / "results" / "gender_age.parquet")
    main = t[t["age_measure"] == "measured_age"]
    assert set(main["metric"]) == {"fnmr_diff", "genuine_score_diff", "fmr_diff"}
    assert set(main["adjusted"]) == {True, False} and (main["model"] == "dlib").all()
    assert (main["family"] == "exploratory").all() and main["p_adjusted"].notna().all()
    # the age gap is the faces' own: female minus male prototype age, per seed and skin level
    faces = pd.read_parquet(gender_run / "faces.parquet")
    proto = faces[faces["edit_attr"] == "none"].pivot_table(index=["seed", "skin_tone"], columns="gender",
                                                           values="measured_age")
    assert main["mean_age_diff"].iloc[0] == pytest.approx((proto["female"] - proto["male"]).mean(), rel=1e-9)
    assert (main["n_units"] == len(proto)).all()
    # the unadjusted row is the paired mean difference: the genuine-score gender contrast over the same pool
    raw = main[(main["metric"] == "genuine_score_diff") & ~main["adjusted"]].iloc[0]
    adj = main[(main["metric"] == "genuine_score_diff") & main["adjusted"]].iloc[0]
    assert raw["ci_lo"] <= raw["estimate"] <= raw["ci_hi"] and adj["ci_lo"] <= adj["estimate"] <= adj["ci_hi"]
    assert adj["ci_lo_cluster"] < adj["estimate"] < adj["ci_hi_cluster"]


def test_impostor_shift_is_recomputed_from_the_scores(gender_run):
    t = pd.read_parquet(gender_run / "results" / "impostor_shift.parquet")
    pairs = pd.read_parquet(gender_run / "pairs.parquet")
    faces = pd.read_parquet(gender_run / "faces.parquet").set_index("face_id")
    scores = pd.read_parquet(gender_run / "scores" / "dlib.parquet")
    imp = pairs[pairs["kind"] == "impostor"].merge(scores[["pair_id", "score", "status"]], on="pair_id")
    imp = imp[imp["status"] == "ok"]
    imp = imp[faces.loc[imp["face_a"], "edit_attr"].astype(str).isin(_pool_conditions(gender_run)).to_numpy()]
    female = imp["group"].str.endswith("gender=female")
    s = t[(t["metric"] == "impostor_score_mean") & (t["scope"] == "all")].iloc[0]
    assert s["value_level"] == pytest.approx(imp.loc[female, "score"].mean(), rel=1e-9)
    assert s["value_ref"] == pytest.approx(imp.loc[~female, "score"].mean(), rel=1e-9)
    assert s["n_level"] == female.sum() and s["ci_lo"] < s["estimate"] < s["ci_hi"]
    f = t[(t["metric"] == "fmr") & (t["scope"] == "all")].iloc[0]
    thr = f["threshold"]
    assert f["events_level"] == (imp.loc[female, "score"] >= thr).sum()
    assert set(t["scope"]) == {"all", "skin=light", "skin=intermediate", "skin=dark"}


def test_section_9_covers_gender_and_the_gate_colours_the_headline(gender_run):
    import re

    page = (gender_run / "report.html").read_text()
    caveats = page.split('id="caveats"')[1].split("</section>")[0]
    for text in ("Perceived gender: placement", "The validating classifier", "Perceived gender: apparent age",
                 "at equal apparent age", "faceres age head", "Perceived gender: impostor similarity",
                 "mean impostor score female / male", "Perceived presentation, not anyone's gender"):
        assert text in caveats, text
    agree = pd.read_parquet(gender_run / "results" / "gender_placement.parquet").set_index("level")
    from faceaudit.report import fmt

    assert f"{fmt.pct(agree.loc['female', 'agree_share'])} of the “female” prototypes" in caveats
    gate = json.loads((gender_run / "results" / "gate.json").read_text())
    assert gate["policy"] == "default" and gate["checks"]
    head = page.split('<nav class="toc">')[0]
    assert "decisions of the gate policy <b>default</b>" in head
    assert re.search(r'class="num (pass|fail|inconclusive)"', head)


def _within_seed_agreement(faces: pd.DataFrame) -> tuple[float, int]:
    """Independently of the generator: per kept seed and skin level, is the validating classifier's
    P(male) of the female prototype below that of the male prototype?"""
    proto = faces[faces["edit_attr"] == "none"].pivot_table(index=["seed", "skin_tone"], columns="gender",
                                                           values="measured_gender_pmale_validation")
    d = (proto["female"] - proto["male"]).dropna()
    return float((d < 0).mean()), int(len(d))


def _section_3_gender(page: str) -> str:
    return page.split("<h3>Protected attribute: perceived gender presentation</h3>")[1].split("<h3>")[0]


def test_section_3_describes_the_joint_placement_and_the_run_s_classifiers(gender_run):
    from faceaudit.report import fmt

    page = (gender_run / "report.html").read_text()
    s3 = _section_3_gender(page)
    faces = pd.read_parquet(gender_run / "faces.parquet")
    placed, validated = faces["gender_placed_by"].iloc[0], faces["gender_validated_by"].iloc[0]
    assert "pulled back" not in s3 and "all skin × gender cells at once" in s3
    assert f"<b>{placed}</b> classifier" in s3 and f"the <b>{validated}</b> classifier" in s3
    assert f"in bin ({validated}, validating)" in s3
    # the measured within-seed agreement, recomputed from the faces, in section 3 and section 9
    share, n = _within_seed_agreement(faces)
    gen = json.loads((gender_run / "results" / "generation.json").read_text())["gender_validation"]
    assert gen["share"] == pytest.approx(share) and gen["n"] == n
    sentence = (f"Measured within-seed agreement of the validating classifier {validated}: within each seed and skin "
                f"level, its P(male) of the “female” prototype is below that of the “male” one in {fmt.pct(share)} of "
                f"{n:,} pairs")
    assert sentence in s3
    caveats = page.split('id="caveats"')[1].split("</section>")[0]
    assert sentence in caveats
    # the local-gradient finish: how many prototypes it placed, and the agreement with and without
    # such a prototype in the pair, recomputed from the faces table
    protos = faces[faces["edit_attr"] == "none"]
    local = protos.pivot_table(index=["seed", "skin_tone"], columns="gender", values="gender_local_shift")
    pv = protos.pivot_table(index=["seed", "skin_tone"], columns="gender", values="measured_gender_pmale_validation")
    either = (local["female"] > 0) | (local["male"] > 0)
    agree = pv["female"] < pv["male"]
    n_local = int((protos["gender_local_shift"] > 0).sum())
    assert f"{n_local:,} of {len(protos):,} kept prototypes" in s3
    placement = json.loads((gender_run / "results" / "generation.json").read_text())["gender_placement"]
    assert placement["prototypes_local_finish"] == n_local and placement["local_finish"]
    if either.any() and (~either).any():
        assert gen["local_finish"]["n"] == int(either.sum()) and gen["directions_only"]["n"] == int((~either).sum())
        assert (f"agrees on {fmt.pct(agree[either].mean())} of {int(either.sum()):,} seed × skin-level pairs with such a "
                f"prototype and on {fmt.pct(agree[~either].mean())} of {int((~either).sum()):,} without") in s3
    assert (protos["gender_local_shift"] <= placement["local_limit"] + 1e-9).all()


def test_section_3_reads_the_classifiers_from_the_faces_table(gender_run):
    from faceaudit.report.evaluation import _gender_facts
    from faceaudit.run import load_run

    run = load_run(gender_run)
    faces = run.faces.assign(gender_placed_by="oarriaga", gender_validated_by="faceres")
    facts = _gender_facts(run, faces, run.protocol)
    assert (facts["placed_by"], facts["validated_by"]) == ("oarriaga", "faceres")
    assert _gender_facts(run, run.faces, run.protocol)["placed_by"] == run.protocol.protected_spec("gender").placed_by


def test_summary_md_has_the_gender_caveats_and_the_gate_verdict(gender_run):
    from faceaudit.report import fmt

    summary = (gender_run / "results" / "summary.md").read_text()
    part = summary.split("### Perceived gender")[1].split("**Caveats:**")[0]
    faces = pd.read_parquet(gender_run / "faces.parquet")
    share, n = _within_seed_agreement(faces)
    assert f"Gender cells placed by faceres P(male), validated by oarriaga: within-seed agreement {fmt.pct(share)} of {n:,}" in part
    age = pd.read_parquet(gender_run / "results" / "gender_age.parquet")
    main = age[(age["age_measure"] == "measured_age") & (age["metric"] == "fnmr_diff")].set_index("adjusted")
    adj, raw = main.loc[True], main.loc[False]
    assert (f"dlib FNMR {fmt.pp(adj['estimate'])} {fmt.ci(adj['ci_lo'], adj['ci_hi'], fmt.pp)} "
            f"(raw {fmt.pp(raw['estimate'])} {fmt.ci(raw['ci_lo'], raw['ci_hi'], fmt.pp)})") in part
    shift = pd.read_parquet(gender_run / "results" / "impostor_shift.parquet")
    s = shift[(shift["metric"] == "impostor_score_mean") & (shift["scope"] == "all")].iloc[0]
    assert f"dlib {fmt.signed(s['estimate'])} {fmt.ci(s['ci_lo'], s['ci_hi'], fmt.signed)}" in part
    assert "sampled impostors" not in summary
    gate = json.loads((gender_run / "results" / "gate.json").read_text())
    c = gate["counts"]
    assert (f"**Gate:** policy default (file {Path(gate['policy_file']).name}): {gate['status'].upper()}, {c['pass']} passed, "
            f"{c['fail']} failed, {c['inconclusive']} inconclusive of {sum(c.values())} checks") in summary


def test_sampled_impostors_are_said_on_the_card_and_in_the_summary(gender_run, tmp_path):
    run = Path(shutil.copytree(gender_run, tmp_path / "run"))
    proto = yaml.safe_load((run / "protocol.yaml").read_text())
    proto["pairs"]["impostor_sample"] = 20
    (tmp_path / "sampled.yaml").write_text(yaml.safe_dump(proto))
    ctx = pipeline.audit(tmp_path / "sampled.yaml", run, progress=False)
    assert "analyze" in ctx.ran and "generate" not in ctx.ran
    # the premise: nothing per impostor pair, so no FMR rows and no shift rows
    assert len(pd.read_parquet(run / "results" / "impostor_shift.parquet")) == 0
    assert "fmr_diff" not in set(pd.read_parquet(run / "results" / "gender_age.parquet")["metric"])
    line = ("Not computed with sampled impostors (pairs.impostor_sample: 20): the FMR rows of the age-adjusted gender "
            "contrast and the whole impostor-similarity table.")
    page = (run / "report.html").read_text()
    caveats = page.split('id="caveats"')[1].split("</section>")[0]
    assert line in caveats and "The table has no FMR rows: with sampled impostors they are not computed" in caveats
    assert "mean impostor score female / male" not in caveats
    summary = (run / "results" / "summary.md").read_text()
    assert f"- {line}" in summary and "; no FMR rows (sampled impostors)." in summary
