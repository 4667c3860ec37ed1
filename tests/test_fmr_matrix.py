"""results/fmr_matrix.parquet and the max/geomean fairness summaries, against independent recomputations.

- on the real quick audit: the diagonal equals error_rates' per-group FMR (exact, counts included);
  every off-diagonal cell equals a direct count over cross-group, different-seed impostor scores
  computed here from the embeddings with the model's own similarity; the twins count same-seed
  prototype pairs; summary.json's max/geomean ratios equal the ones recomputed from error_rates;
- on a synthetic design with a planted effect: the effect shows up in the right cells only;
- the dyadic variance of a cell equals the reference algebra of :mod:`faceaudit.stats.dyadic`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceaudit.stats.data import make_layout
from faceaudit.stats.dyadic import DyadicDesign, rate_influence
from faceaudit.stats.primary import RATIO_SMOOTHING
from faceaudit.stats.fmr_matrix import FMR_MATRIX_COLUMNS, dyadic_rate_variance, fmr_matrix_table


def _direct_cross(faces, emb, similarity, ga, gb, thr, same_seed=False, conditions=None):
    """Counts of (face of ga, face of gb) in the same condition, both enrolled, seeds different (or equal)."""
    f = faces.merge(emb[["face_id", "status", "embedding"]], on="face_id")
    f = f[f["status"] == "ok"]
    if conditions is not None:
        f = f[f["edit_attr"].isin(conditions)]
    a, b = f[f["group"] == ga], f[f["group"] == gb]
    m = a.merge(b, on=["edit_attr", "edit_level"], suffixes=("_a", "_b"))
    m = m[(m["seed_a"] == m["seed_b"]) if same_seed else (m["seed_a"] != m["seed_b"])]
    if not len(m):
        return 0, 0
    ea = np.stack([np.asarray(e, np.float32) for e in m["embedding_a"]])
    eb = np.stack([np.asarray(e, np.float32) for e in m["embedding_b"]])
    sc = np.asarray(similarity(ea, eb))
    return int((sc >= thr).sum()), len(m)


def test_fmr_matrix_on_the_quick_audit(quick_run):
    from faceaudit.models.registry import builtin_similarity

    run = Path(quick_run)
    fm = pd.read_parquet(run / "results" / "fmr_matrix.parquet")
    er = pd.read_parquet(run / "results" / "error_rates.parquet")
    faces = pd.read_parquet(run / "faces.parquet")
    assert set(FMR_MATRIX_COLUMNS) <= set(fm.columns)
    assert set(fm["threshold_source"]) == {"target_fmr"}
    groups = list(dict.fromkeys(er.loc[er["group"] != "all", "group"]))
    pooled = er[(er["edit_attr"] == "all") & (er["group"] != "all")]
    for model in er["model"].unique():
        sim = builtin_similarity(model)
        emb = pd.read_parquet(run / "embeddings" / f"{model}.parquet")
        m = fm[fm["model"] == model]
        for t in er["target_fmr"].dropna().unique():
            mt = m[m["target_fmr"] == t]
            imp, twin = mt[mt["kind"] == "impostor"], mt[mt["kind"] == "twin"]
            # every unordered pair of groups once, in protocol order
            pairs = [(groups[i], groups[j]) for i in range(len(groups)) for j in range(i, len(groups))]
            assert list(zip(imp["group_a"], imp["group_b"])) == pairs
            per_group = pooled[(pooled["model"] == model) & (pooled["target_fmr"] == t)].set_index("group")
            thr = float(per_group["threshold"].iloc[0])
            for r in imp.itertuples():
                if r.group_a == r.group_b:  # the diagonal is the per-group FMR, exactly
                    g = per_group.loc[r.group_a]
                    assert (r.fmr, r.fmr_lo, r.fmr_hi, r.n_impostor, r.n_false_match) == (
                        g["fmr"], g["fmr_lo"], g["fmr_hi"], g["n_impostor"], g["n_false_match"])
                else:
                    e, n = _direct_cross(faces, emb, sim, r.group_a, r.group_b, thr)
                    assert (r.n_false_match, r.n_impostor) == (e, n)
                    assert r.fmr == e / n
                    assert r.fmr_lo <= r.fmr <= r.fmr_hi
            assert len(twin) == len(groups) * (len(groups) - 1) // 2
            for r in twin.itertuples():
                e, n = _direct_cross(faces, emb, sim, r.group_a, r.group_b, thr, same_seed=True, conditions=["none"])
                assert (r.n_false_match, r.n_impostor) == (e, n) and n > 0


def test_max_geomean_in_summary_equals_recomputation_from_error_rates(quick_run):
    run = Path(quick_run)
    er = pd.read_parquet(run / "results" / "error_rates.parquet")
    summary = json.loads((run / "results" / "summary.json").read_text())
    fair = pd.read_parquet(run / "results" / "fairness.parquet")
    pooled = er[(er["edit_attr"] == "all") & (er["group"] != "all")]
    checked = 0
    for (model, t), g in pooled.groupby(["model", "target_fmr"]):
        key = next(k for k, v in summary["models"][model].items() if isinstance(v, dict) and v.get("target_fmr") == t)
        for side, e, n in (("fmr", "n_false_match", "n_impostor"), ("fnmr", "n_false_non_match", "n_genuine")):
            x = (g[e].to_numpy(float) + 0.5) / (g[n].to_numpy(float) + 1.0)
            expect = x.max() / np.exp(np.log(x).mean())
            assert summary["models"][model][key][f"{side}_max_geomean"]["estimate"] == expect
            row = fair[(fair["model"] == model) & (fair["target_fmr"] == t) & (fair["metric"] == f"{side}_max_geomean")]
            assert row["smoothing"].iloc[0] == RATIO_SMOOTHING
            assert row["n_events_min"].iloc[0] == g[e].min()
            assert bool(row["reportable"].iloc[0]) == (g[e].min() >= 10)
            mm = fair[(fair["model"] == model) & (fair["target_fmr"] == t) & (fair["metric"] == f"{side}_max_min_ratio")]
            assert 1.0 <= expect <= mm["estimate"].iloc[0]
            checked += 1
    assert checked >= 4


def _planted(n_seeds=24, dim=32, seed=0):
    """Groups A, B, C over two conditions; B and C share a direction (cross B x C impostors look alike,
    A x B and A x C do not); B's prototype of each seed is A's prototype plus small noise (twins A-B match)."""
    rng = np.random.default_rng(seed)
    groups = ["g=A", "g=B", "g=C"]
    conds = [("none", 0.0), ("light", 1.0)]
    rows, embs = [], []
    shared = rng.normal(size=dim) * 2.0
    for s in range(n_seeds):
        for attr, lv in conds:
            base = rng.normal(size=dim)
            for g in groups:
                if g == "g=A":
                    v = base
                elif g == "g=B":
                    v = (base + 0.05 * rng.normal(size=dim)) if attr == "none" else rng.normal(size=dim) + shared
                else:
                    v = rng.normal(size=dim) + shared
                rows.append({"face_id": f"{s}-{g}-{attr}", "seed": s, "group": g, "edit_attr": attr, "edit_level": lv})
                embs.append(v.astype(np.float32))
    faces = pd.DataFrame(rows)
    emb = pd.DataFrame({"face_id": faces["face_id"], "status": "ok", "embedding": embs})
    return faces, emb, groups


def test_planted_effect_shows_in_the_right_cells():
    faces, emb, groups = _planted()
    layout = make_layout(faces, groups)
    thr = 0.5
    er = pd.DataFrame({"model": "m", "group": groups, "edit_attr": "all", "target_fmr": 0.01, "threshold": thr,
                       "fmr": 0.0, "fmr_lo": 0.0, "fmr_hi": 0.1, "n_impostor": 1, "n_false_match": 0, "n_seeds": 24})
    t = fmr_matrix_table("m", faces, emb, layout, er).set_index(["kind", "group_a", "group_b"])
    bc, ab, ac = t.loc[("impostor", "g=B", "g=C")], t.loc[("impostor", "g=A", "g=B")], t.loc[("impostor", "g=A", "g=C")]
    assert bc["fmr_lo"] > max(ab["fmr_hi"], ac["fmr_hi"])
    assert bc["n_impostor"] == 2 * 24 * 23  # two conditions, ordered seed pairs s != t
    # independent count
    sim = lambda a, b: (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))  # noqa: E731
    assert bc["n_false_match"] == _direct_cross(faces, emb, sim, "g=B", "g=C", thr)[0]
    # twins: B is A's prototype recoloured (matches); C is another face (chance level)
    assert t.loc[("twin", "g=A", "g=B"), "fmr"] == 1.0
    ac_twin = t.loc[("twin", "g=A", "g=C")]
    assert ac_twin["n_false_match"] == _direct_cross(faces, emb, sim, "g=A", "g=C", thr, same_seed=True,
                                                     conditions=["none"])[0]
    assert t.loc[("twin", "g=A", "g=B"), "fmr_lo"] > ac_twin["fmr_hi"]
    assert t.loc[("twin", "g=A", "g=B"), "n_impostor"] == 24


def test_cell_variance_equals_the_dyadic_reference():
    rng = np.random.default_rng(1)
    S = 12
    a, b, hit = [], [], []
    for _ in range(3):  # three conditions: a seed pair's comparisons share one dyad
        for s in range(S):
            for u in range(S):
                if s != u:
                    a.append(s), b.append(u), hit.append(rng.random() < 0.1 + 0.02 * s)
    a, b, hit = np.array(a), np.array(b), np.array(hit, float)
    H, N = np.zeros((S, S)), np.zeros((S, S))
    np.add.at(H, (a, b), hit)
    np.add.at(N, (a, b), 1.0)
    design = DyadicDesign.from_pairs(a, b, S)
    mask = np.ones(len(a), bool)
    u, e, n = rate_influence(hit, np.ones(len(a)), mask)
    assert dyadic_rate_variance(H, N) == pytest.approx(design.variance(u, mask) / n ** 2, rel=1e-12)


def test_card_draws_one_heatmap_per_model_and_the_twins(synthetic_run):
    """With results/fmr_matrix.parquet the card adds one valid plotly heatmap per model and the twins table."""
    from _synthetic_run import MODELS, TARGET_FMR

    from faceaudit.report.render import build_context, render_report
    from faceaudit.rundir import write_table
    from faceaudit.run import load_run

    groups = ["skin=light", "skin=intermediate", "skin=dark"]
    rows = []
    for m in MODELS:
        for i, a in enumerate(groups):
            for b in groups[i:]:
                rows.append({"model": m, "kind": "impostor", "group_a": a, "group_b": b, "threshold_source": "target_fmr",
                             "target_fmr": TARGET_FMR, "threshold": 0.3, "fmr": 0.0 if a == b == "skin=dark" else 0.02,
                             "fmr_lo": 0.0, "fmr_hi": 0.05, "n_impostor": 400,
                             "n_false_match": 0 if a == b == "skin=dark" else 8, "n_seeds": 9})
            for b in groups[i + 1:]:
                rows.append({"model": m, "kind": "twin", "group_a": a, "group_b": b, "threshold_source": "target_fmr",
                             "target_fmr": TARGET_FMR, "threshold": 0.3, "fmr": 7 / 9, "fmr_lo": 0.45, "fmr_hi": 0.94,
                             "n_impostor": 9, "n_false_match": 7, "n_seeds": 9})
    write_table(Path(synthetic_run) / "results" / "fmr_matrix.parquet", pd.DataFrame(rows))
    ctx = build_context(load_run(synthetic_run))
    heat = ctx["figures"]["fmr_matrix"]
    assert [f.key for f in heat] == [f"fmr-matrix-{m}" for m in MODELS]
    for f in heat:
        fig = f.to_plotly()
        assert fig.data[0].type == "heatmap"
        z = np.array(fig.data[0].z, dtype=float)
        assert np.allclose(z, z.T)  # unordered pairs drawn symmetric
        assert z[2, 2] == pytest.approx(np.log10(0.5 / 400))  # no false match: half a false match
        assert "8 false matches / 400 impostor pairs" in fig.data[0].text[0][1]
    assert ctx["fmr_twins"] is not None and len(ctx["fmr_twins"].rows) == 2 * 3
    page = render_report(synthetic_run).read_text()
    assert "Cross-group impostor FMR" in page and "counterfactual level" in page
    divs = re.findall(r'<div class="fa-plot" id="(fig-\d+)"', page)
    assert len(divs) == 2 * 7 + len(MODELS)  # tests/test_report.py's figures plus one heatmap per model
