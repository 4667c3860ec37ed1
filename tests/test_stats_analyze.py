"""analyze_run on a simulated run directory: tables, agreement with direct computation, determinism,
bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from faceaudit.core.errors import BadInput
from faceaudit.rundir import read_table, write_table
from faceaudit.stats.analyze import analyze_run
from faceaudit.stats.simulate import SimSpec, write_sim_run

DESIGN_ER = ["model", "group", "threshold", "target_fmr", "n_genuine", "n_impostor", "fmr", "fmr_lo", "fmr_hi",
             "fnmr", "fnmr_lo", "fnmr_hi", "fte_rate"]
DESIGN_C = ["model", "attribute", "level", "reference", "metric", "estimate", "ci_lo", "ci_hi", "p_value", "p_adjusted"]


def _make(root, seed=0):
    spec = SimSpec(n_seeds=25, edits={"lighting": (-2.0, 2.0), "yaw": (1.0, 2.0)}, gen_mean=0.45,
                   gen_shift={"skin=dark": -0.05}, fte_prob=0.02, max_impostors_per_condition=200)
    return write_sim_run(root, spec, np.random.default_rng(seed), models=("m1", "m2"), n_boot=200,
                         target_fmr=(1e-2, 5e-2), seed=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = _make(tmp_path_factory.mktemp("run") / "r")
    return root, analyze_run(root)


def test_tables_and_columns(run):
    root, out = run
    for name in ("error_rates", "contrasts", "dose_response", "fairness", "roc", "score_hist"):
        assert (root / "results" / f"{name}.parquet").exists()
        assert len(out[name]) > 0
    assert set(DESIGN_ER) <= set(out["error_rates"].columns)
    assert set(DESIGN_C) <= set(out["contrasts"].columns)
    er = out["error_rates"]
    pooled = er[er["edit_attr"] == "all"]
    # one row per model x target x (3 groups + all)
    assert len(pooled) == 2 * 2 * 4
    assert (pooled["fmr_lo"] <= pooled["fmr"]).all() and (pooled["fmr"] <= pooled["fmr_hi"]).all()
    c = out["contrasts"]
    assert c["p_adjusted"].ge(c["p_value"] - 1e-12).all() and (c["adjust"] == "holm").all()
    dr = out["dose_response"]
    assert {"mean", "slope", "interaction"} <= set(dr["row_type"])
    assert dr.loc[dr["row_type"] != "mean", "fit_note"].str.len().gt(0).all()


def test_rates_agree_with_direct_computation(run):
    root, out = run
    pairs = read_table(root / "pairs.parquet")
    er = out["error_rates"]
    for model in ("m1", "m2"):
        sc = pairs.merge(read_table(root / "scores" / f"{model}.parquet"), on="pair_id")
        ok = sc[sc["status"] == "ok"]
        for target in (1e-2, 5e-2):
            rows = er[(er["model"] == model) & (er["target_fmr"] == target) & (er["edit_attr"] == "all")].set_index("group")
            t = rows["threshold"].iloc[0]
            imp = ok[ok["kind"] == "impostor"]
            assert (imp["score"] >= t).mean() <= target
            for g, gdf in ok.groupby("group"):
                gen, im = gdf[gdf["kind"] == "genuine"], gdf[gdf["kind"] == "impostor"]
                assert rows.loc[g, "fnmr"] == pytest.approx((gen["score"] < t).mean())
                assert rows.loc[g, "fmr"] == pytest.approx((im["score"] >= t).mean())
                assert rows.loc[g, "n_genuine"] == len(gen) and rows.loc[g, "n_impostor"] == len(im)
                allgen = sc[(sc["kind"] == "genuine") & (sc["group"] == g)]
                gfnmr = ((allgen["status"] == "fte") | (allgen["score"] < t)).mean()
                assert rows.loc[g, "gfnmr"] == pytest.approx(gfnmr)
        st = read_table(root / "embeddings" / f"{model}.parquet").merge(read_table(root / "faces.parquet"), on="face_id")
        fte = st.groupby("group")["status"].apply(lambda s: (s == "fte").mean())
        rows = er[(er["model"] == model) & (er["edit_attr"] == "all") & (er["group"] != "all")].drop_duplicates("group")
        for r in rows.itertuples():
            assert r.fte_rate == pytest.approx(fte[r.group])


def test_summary_json_is_strict_and_consistent(run):
    root, out = run
    text = (root / "results" / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    m = summary["models"]["m1"]["1e-02"]
    er = out["error_rates"]
    row = er[(er["model"] == "m1") & (er["target_fmr"] == 1e-2) & (er["edit_attr"] == "all") & (er["group"] == "skin=dark")].iloc[0]
    assert m["fnmr"]["skin=dark"]["estimate"] == pytest.approx(row["fnmr"])
    assert m["fnmr"]["skin=dark"]["ci_hi"] == pytest.approx(row["fnmr_hi"])
    for key in ("fnmr_max_min_ratio", "fmr_max_min_ratio", "fdr", "ir", "garbe"):
        assert set(m[key]) == {"estimate", "ci_lo", "ci_hi"}
    assert set(m["fnmr_diff"]) == {"skin=intermediate", "skin=dark"}
    assert summary["n_seeds"] == 25 and summary["reference_group"] == "skin=light"
    assert summary["contrasts"] and all(c["attribute"] == "skin_tone" for c in summary["contrasts"])


def test_deterministic(run, tmp_path):
    root, out = run
    again = analyze_run(root, write=False)
    for name in ("error_rates", "contrasts", "fairness"):
        pd.testing.assert_frame_equal(out[name], again[name])


def test_bad_input_messages(tmp_path):
    root = _make(tmp_path / "bad")
    sc = read_table(root / "scores" / "m2.parquet")
    i = sc.index[sc["status"] == "ok"][5]
    sc.loc[i, "score"] = np.nan
    write_table(root / "scores" / "m2.parquet", sc)
    with pytest.raises(BadInput, match=rf"model m2.*pair_id {sc.loc[i, 'pair_id']}\b"):
        analyze_run(root)
    (root / "embeddings" / "m1.parquet").unlink()
    with pytest.raises(BadInput, match=r"embeddings/m1\.parquet: missing"):
        analyze_run(root)
    (root / "pairs.parquet").unlink()
    with pytest.raises(BadInput, match=r"pairs\.parquet: missing"):
        analyze_run(root)
    # the one reader of a run (faceaudit.run.load_run) says what is missing
    with pytest.raises(BadInput, match=r"nowhere: not a run directory \(no such directory\)"):
        analyze_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match=r"empty: not a run directory \(no protocol\.yaml\)"):
        analyze_run(tmp_path / "empty")
