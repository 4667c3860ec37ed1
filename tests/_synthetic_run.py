"""A small, fully synthetic run directory with the DESIGN.md tables, for report and notebook tests.

Nothing here runs a generator or a model: images are drawn with PIL, scores are drawn from known
distributions (the dark group's genuine scores are lower, so the tables show a real effect), and
the results tables are computed from those scores with the same definitions the analysis uses
(global threshold at the target FMR on pooled impostors; seed-resampling bootstrap CIs). A few
contrasts carry fixed numbers so tests can look for them verbatim in the report.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, sha256_bytes, write_bytes, write_json, write_table, write_text

N_SEEDS_REQUESTED = 10
EXCLUDED_SEEDS = {7: "skin edit could not reach bin 'dark' within 12 steps"}
TARGET_FMR = 0.01
MODELS = ("alpha", "beta")
#: face of model beta that fails to enrol (one FTE row per model is enough to exercise the columns)
FTE_FACE = "s0003_dark_yaw_+2"

#: contrasts with fixed values, looked up verbatim by the tests (pooled over conditions: condition "all")
FIXED_CONTRASTS = [
    # model, attribute, level, reference, metric, estimate, ci_lo, ci_hi, p_value, p_adjusted, condition
    ("alpha", "skin_tone", "dark", "light", "fnmr_diff", 0.1875, 0.0625, 0.3125, 0.0021, 0.0084, "all"),
    ("alpha", "skin_tone", "intermediate", "light", "fnmr_diff", 0.0625, -0.0312, 0.1562, 0.19, 0.38, "all"),
    ("alpha", "skin_tone", "dark", "light", "fnmr_ratio", 2.5, 1.2, 9.5, 0.0031, 0.0093, "all"),
    ("alpha", "skin_tone", "dark", "light", "genuine_score_diff", -0.0731, -0.1012, -0.0455, 0.0004, 0.0024, "all"),
    ("beta", "skin_tone", "dark", "light", "fnmr_diff", 0.0938, -0.0125, 0.2, 0.081, 0.243, "all"),
    ("beta", "skin_tone", "intermediate", "light", "fnmr_diff", 0.0312, -0.05, 0.125, 0.52, 0.52, "all"),
    ("beta", "skin_tone", "dark", "light", "genuine_score_diff", -0.0412, -0.0688, -0.0139, 0.0061, 0.0305, "all"),
    # within one edit condition
    ("alpha", "skin_tone|lighting=-2", "dark", "light", "fnmr_diff", 0.2222, 0.0, 0.5556, 0.041, 0.41, "lighting=-2"),
    ("beta", "skin_tone|lighting=-2", "dark", "light", "fnmr_diff", 0.1111, 0.0, 0.3333, 0.32, 1.0, "lighting=-2"),
]

#: fairness summaries with fixed values (results/fairness.parquet schema of faceaudit.stats)
FIXED_FAIRNESS = [
    # model, target_fmr, metric, estimate, ci_lo, ci_hi, worst_group, best_group
    ("alpha", TARGET_FMR, "fnmr_max_min_ratio", 3.42, 1.5, 9.8, "skin=dark", "skin=light"),
    ("alpha", TARGET_FMR, "fnmr_max_diff", 0.0417, 0.0139, 0.125, "skin=dark", "skin=light"),
    ("alpha", TARGET_FMR, "garbe", 0.271, 0.12, 0.55, None, None),
    ("beta", TARGET_FMR, "fnmr_max_min_ratio", 1.87, 1.0, 6.1, "skin=dark", "skin=light"),
    ("beta", TARGET_FMR, "fnmr_max_diff", 0.0282, 0.0, 0.0845, "skin=dark", "skin=light"),
    ("beta", TARGET_FMR, "garbe", 0.144, 0.02, 0.61, None, None),
    ("beta", float("nan"), "fte_max_min_ratio", 3.0, 1.0, 7.0, "skin=dark", "skin=light"),
]

#: mixed-model rows of results/dose_response.parquet (row_type slope / interaction)
FIXED_DOSE_TERMS = [
    # model, edit_attr, group, row_type, term, estimate, ci_lo, ci_hi, p_value
    ("alpha", "lighting", "skin=light", "slope", "abs_level", -0.0816, -0.1423, -0.0208, 0.0085),
    ("alpha", "lighting", "skin=dark", "interaction", "skin=dark:abs_level", 0.044, -0.0669, 0.1549, 0.437),
    ("beta", "lighting", "skin=light", "slope", "abs_level", -0.0433, -0.0801, -0.0065, 0.021),
]

MODEL_METADATA = {
    "alpha": {
        "name": "alpha",
        "version": "alpha-1.2.0+weights.3f2a",
        "embedding_dim": 128,
        "architecture": "ResNet-29 metric-learning network",
        "training_data": "About 3 million faces of 7485 identities (VGG + FaceScrub + scraped)",
        "license": "CC0 (weights), Boost (code)",
        "source": "synthetic test fixture",
        "input_size": "150x150, 5-landmark alignment",
        "alignment": "dlib 5-point shape predictor",
    },
    # beta documents nothing about its training data: the card must say it is unknown
    "beta": {"name": "beta", "version": "beta-0.9", "embedding_dim": 64, "architecture": "MobileFaceNet variant"},
}

GROUP_GENUINE_SHIFT = {"light": 0.0, "intermediate": -0.03, "dark": -0.08}


def synthetic_protocol() -> Protocol:
    return Protocol.model_validate(
        {
            "name": "synthetic",
            "description": "Synthetic fixture run for the report tests.",
            "seed": 11,
            "n_seeds": N_SEEDS_REQUESTED,
            "edits": [
                {"attribute": "lighting", "levels": [-2, -1, 1, 2]},
                {"attribute": "yaw", "levels": [-2, 2]},
                {"attribute": "smile", "levels": [-1, 1]},
            ],
            "models": list(MODELS),
            "analysis": {"target_fmr": [TARGET_FMR], "n_boot": 200},
        }
    )


# ---------------------------------------------------------------------------------------------
# faces and images


def _face_png(rng: np.random.Generator, skin_rgb: tuple[int, int, int], edit_attr: str, level: float) -> bytes:
    light = 1.0 + (0.12 * level if edit_attr == "lighting" else 0.0)
    yaw = level if edit_attr == "yaw" else 0.0
    smile = level if edit_attr == "smile" else 0.0
    bg = tuple(int(v) for v in rng.integers(90, 160, size=3))
    img = Image.new("RGB", (64, 64), bg)
    d = ImageDraw.Draw(img)
    skin = tuple(int(np.clip(c * light, 0, 255)) for c in skin_rgb)
    cx = 32 + 3 * yaw
    d.ellipse([cx - 16, 12, cx + 16, 54], fill=skin)
    for ex in (cx - 7 + 2 * yaw, cx + 7 + 2 * yaw):
        d.ellipse([ex - 2, 27, ex + 2, 31], fill=(30, 25, 20))
    d.arc([cx - 7 - smile, 36 - smile, cx + 7 + smile, 46 + smile], 20, 160, fill=(120, 40, 40), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _faces(protocol: Protocol, run: RunDir, rng: np.random.Generator) -> pd.DataFrame:
    skin = {"light": (236, 200, 170), "intermediate": (198, 150, 110), "dark": (120, 80, 55)}
    kept = [s for s in range(N_SEEDS_REQUESTED) if s not in EXCLUDED_SEEDS]
    conditions = [("none", 0.0)] + [(e.attribute, float(lv)) for e in protocol.edits for lv in e.levels]
    rows = []
    for seed in kept:
        for level in protocol.protected.levels:
            for attr, lvl in conditions:
                face_id = f"s{seed:04d}_{level.name}_{attr}" + ("" if attr == "none" else f"_{lvl:+g}")
                png = _face_png(rng, skin[level.name], attr, lvl)
                rel = f"images/{face_id}.png"
                write_bytes(run.root / rel, png)
                light = lvl if attr == "lighting" else 0.0
                rows.append(
                    {
                        "face_id": face_id,
                        "seed": seed,
                        "group": f"skin={level.name}",
                        "skin_tone": level.name,
                        "edit_attr": attr,
                        "edit_level": lvl,
                        "path": rel,
                        "sha256": sha256_bytes(png),
                        "source": "synthetic",
                        # ITA rises with lighting: the confound the caveats section quantifies
                        "measured_skin_ita": level.target + 6.0 * light + rng.normal(0, 2.0),
                        "measured_yaw": (12.0 * lvl if attr == "yaw" else 0.0) + rng.normal(0, 2.0),
                        "measured_lighting": 0.5 * light + rng.normal(0, 0.1),
                        "measured_smile": (0.3 * lvl if attr == "smile" else 0.0) + rng.normal(0, 0.05),
                        "measured_brightness": 120 + 15 * light + rng.normal(0, 3),
                        "measured_contrast": 40 + rng.normal(0, 2),
                        "measured_ok": True,
                    }
                )
    return pd.DataFrame(rows)


def _pairs(faces: pd.DataFrame) -> pd.DataFrame:
    protos = faces[faces["edit_attr"] == "none"].set_index(["seed", "group"])["face_id"]
    rows = []
    for f in faces[faces["edit_attr"] != "none"].itertuples():
        rows.append((protos[(f.seed, f.group)], f.face_id, "genuine", f.seed, f.seed, f.group, f.edit_attr, f.edit_level))
    for (group, attr, lvl), block in faces.groupby(["group", "edit_attr", "edit_level"], sort=True):
        block = block.sort_values("seed")
        ids, seeds = block["face_id"].to_numpy(), block["seed"].to_numpy()
        for i in range(len(block)):
            for j in range(i + 1, len(block)):
                rows.append((ids[i], ids[j], "impostor", seeds[i], seeds[j], group, attr, lvl))
    pairs = pd.DataFrame(rows, columns=["face_a", "face_b", "kind", "seed_a", "seed_b", "group", "edit_attr", "edit_level"])
    pairs.insert(0, "pair_id", np.arange(len(pairs), dtype=np.int64))
    return pairs


def _scores(pairs: pd.DataFrame, model: str, rng: np.random.Generator) -> pd.DataFrame:
    skin = pairs["group"].str.removeprefix("skin=")
    genuine = (pairs["kind"] == "genuine").to_numpy()
    model_gap = 1.0 if model == "alpha" else 0.5
    mean = np.where(
        genuine,
        0.62 - 0.05 * pairs["edit_level"].abs().to_numpy() + model_gap * skin.map(GROUP_GENUINE_SHIFT).to_numpy(),
        0.12,
    )
    score = mean + rng.normal(0, 0.09, size=len(pairs))
    fte = np.zeros(len(pairs), dtype=bool)
    if model == "beta":
        fte = (pairs["face_a"] == FTE_FACE).to_numpy() | (pairs["face_b"] == FTE_FACE).to_numpy()
    return pd.DataFrame(
        {
            "pair_id": pairs["pair_id"],
            "model": model,
            "score": np.where(fte, np.nan, score),
            "status": np.where(fte, "fte", "ok"),
        }
    )


# ---------------------------------------------------------------------------------------------
# results


def _rate_with_ci(errors: np.ndarray, seeds: np.ndarray, rng: np.random.Generator, n_boot: int = 200) -> tuple[float, float, float]:
    """Error rate and a 95% percentile CI from resampling seeds (the clusters)."""
    if len(errors) == 0:
        return float("nan"), float("nan"), float("nan")
    uniq, inv = np.unique(seeds, return_inverse=True)
    err_per = np.bincount(inv, weights=errors.astype(float), minlength=len(uniq))
    n_per = np.bincount(inv, minlength=len(uniq)).astype(float)
    draw = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    boot = err_per[draw].sum(axis=1) / n_per[draw].sum(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(errors.mean()), float(lo), float(hi)


def _condition(attr: str, level: float) -> str:
    return attr if attr in ("all", "none") else f"{attr}={level:+g}"


def _error_rates(pairs: pd.DataFrame, scores: dict[str, pd.DataFrame], faces: pd.DataFrame,
                 emb_status: dict[str, pd.DataFrame], rng: np.random.Generator) -> pd.DataFrame:
    """results/error_rates.parquet as faceaudit.stats writes it: every (group + "all") x (condition + "all")."""
    rows = []
    for model, sc in scores.items():
        sp = pairs.merge(sc, on="pair_id")
        ok = sp[sp["status"] == "ok"]
        imp_all = ok.loc[ok["kind"] == "impostor", "score"].to_numpy()
        threshold = float(np.quantile(imp_all, 1 - TARGET_FMR, method="higher"))
        status = emb_status[model].merge(faces[["face_id", "seed", "group", "edit_attr", "edit_level"]], on="face_id")
        groups = sorted(ok["group"].unique()) + ["all"]
        conds = [("all", float("nan"))] + sorted(set(zip(ok["edit_attr"], ok["edit_level"])))
        for group in groups:
            for attr, level in conds:
                sel = ok if group == "all" else ok[ok["group"] == group]
                fst = status if group == "all" else status[status["group"] == group]
                if attr != "all":
                    sel = sel[(sel["edit_attr"] == attr) & (sel["edit_level"] == level)]
                    fst = fst[(fst["edit_attr"] == attr) & (fst["edit_level"] == level)]
                gen, imp = sel[sel["kind"] == "genuine"], sel[sel["kind"] == "impostor"]
                fmr = _rate_with_ci((imp["score"] >= threshold).to_numpy(), imp["seed_a"].to_numpy(), rng)
                fnmr = _rate_with_ci((gen["score"] < threshold).to_numpy(), gen["seed_a"].to_numpy(), rng)
                fte = _rate_with_ci((fst["status"] != "ok").to_numpy(), fst["seed"].to_numpy(), rng)
                rows.append({
                    "model": model, "group": group, "edit_attr": attr, "edit_level": level,
                    "condition": _condition(attr, level), "threshold": threshold, "target_fmr": TARGET_FMR,
                    "n_genuine": int(len(gen)), "n_impostor": int(len(imp)),
                    "n_false_match": int((imp["score"] >= threshold).sum()),
                    "n_false_non_match": int((gen["score"] < threshold).sum()),
                    "fmr": fmr[0], "fmr_lo": fmr[1], "fmr_hi": fmr[2],
                    "fnmr": fnmr[0], "fnmr_lo": fnmr[1], "fnmr_hi": fnmr[2],
                    "fte_rate": fte[0], "fte_lo": fte[1], "fte_hi": fte[2],
                    "n_seeds": int(sel["seed_a"].nunique()),
                    "eer": 0.0123 + 0.01 * groups.index(group) if attr == "all" else float("nan"),
                })
    return pd.DataFrame(rows)


def _dose_response(pairs: pd.DataFrame, scores: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-level means (row_type "mean") computed from the scores, plus fixed mixed-model terms."""
    rows = []
    for model, sc in scores.items():
        gen = pairs.merge(sc, on="pair_id").query("kind == 'genuine' and status == 'ok'")
        for (group, attr, level), block in gen.groupby(["group", "edit_attr", "edit_level"], sort=True):
            s = block["score"].to_numpy()
            half = 1.96 * s.std(ddof=1) / np.sqrt(len(s))
            rows.append({"row_type": "mean", "model": model, "edit_attr": attr, "group": group, "edit_level": float(level),
                         "mean_score": float(s.mean()), "ci_lo": float(s.mean() - half), "ci_hi": float(s.mean() + half),
                         "n": int(len(s)), "term": None, "estimate": float("nan"), "p_value": float("nan"),
                         "method": None, "converged": None})
    for model, attr, group, row_type, term, est, lo, hi, p in FIXED_DOSE_TERMS:
        rows.append({"row_type": row_type, "model": model, "edit_attr": attr, "group": group, "edit_level": float("nan"),
                     "mean_score": float("nan"), "ci_lo": lo, "ci_hi": hi, "n": 108, "term": term, "estimate": est,
                     "p_value": p, "method": "mixedlm", "converged": True})
    return pd.DataFrame(rows)


def _manipulation_check(faces: pd.DataFrame) -> pd.DataFrame:
    """The generate stage's long table: mean within-seed change of every measure at every edit level."""
    rows = []
    protos = faces[faces["edit_attr"] == "none"].set_index(["seed", "group"])
    for (attr, level), lb in faces[faces["edit_attr"] != "none"].groupby(["edit_attr", "edit_level"], sort=True):
        base = protos.loc[list(zip(lb["seed"], lb["group"]))]
        for m in ("skin_ita", "yaw", "lighting", "smile"):
            diff = lb[f"measured_{m}"].to_numpy() - base[f"measured_{m}"].to_numpy()
            rows.append({"edit_attr": attr, "edit_label": f"{attr}={level:+g}", "edit_level": float(level),
                         "measure": m, "mean_change": float(diff.mean()), "sd_change": float(diff.std(ddof=1)),
                         "n": int(len(diff)), "is_target": m == attr})
    return pd.DataFrame(rows)


def build_synthetic_run(root: str | Path) -> Path:
    """Write the synthetic run into ``root`` (created) and return its path."""
    run = RunDir(root)
    run.root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    protocol = synthetic_protocol()
    write_text(run.protocol, protocol.to_yaml())

    faces = _faces(protocol, run, rng)
    write_table(run.faces, faces)
    pairs = _pairs(faces)
    write_table(run.pairs, pairs)

    scores, emb_status = {}, {}
    for model in MODELS:
        status = np.where(faces["face_id"].eq(FTE_FACE) & (model == "beta"), "fte", "ok")
        dim = MODEL_METADATA[model]["embedding_dim"]
        emb = pd.DataFrame({"face_id": faces["face_id"], "sha256": faces["sha256"], "model": model,
                            "model_version": MODEL_METADATA[model]["version"], "status": status,
                            "embedding": [np.zeros(dim, dtype=np.float32) for _ in range(len(faces))]})
        write_table(run.embeddings(model), emb)
        emb_status[model] = emb[["face_id", "status"]]
        scores[model] = _scores(pairs, model, rng)
        write_table(run.scores(model), scores[model])

    write_table(run.results / "error_rates.parquet", _error_rates(pairs, scores, faces, emb_status, rng))
    for name, table in _curve_tables(protocol, faces, pairs, scores, emb_status).items():
        write_table(run.results / f"{name}.parquet", table)
    contrasts = pd.DataFrame(FIXED_CONTRASTS, columns=["model", "attribute", "level", "reference", "metric", "estimate",
                                                       "ci_lo", "ci_hi", "p_value", "p_adjusted", "condition"])
    contrasts["target_fmr"] = np.where(contrasts["metric"].str.startswith(("fnmr", "fmr")), TARGET_FMR, np.nan)
    contrasts["group"] = "skin=" + contrasts["level"]
    contrasts["reference_group"] = "skin=" + contrasts["reference"]
    contrasts["n_seeds"] = N_SEEDS_REQUESTED - len(EXCLUDED_SEEDS)
    write_table(run.results / "contrasts.parquet", contrasts)
    write_table(run.results / "dose_response.parquet", _dose_response(pairs, scores))
    write_table(run.manipulation_check, _manipulation_check(faces))
    write_table(run.results / "fairness.parquet", pd.DataFrame(
        FIXED_FAIRNESS, columns=["model", "target_fmr", "metric", "estimate", "ci_lo", "ci_hi", "worst_group", "best_group"]))
    kept = sorted(int(s) for s in faces["seed"].unique())
    write_json(run.results / "generation.json", {
        "n_seeds_requested": N_SEEDS_REQUESTED, "n_seeds_kept": len(kept),
        "n_seeds_excluded": N_SEEDS_REQUESTED - len(kept), "excluded_seeds": sorted(EXCLUDED_SEEDS),
        "exclusions": [{"seed": s, "level": "dark", "reason": r, "steps": 12} for s, r in EXCLUDED_SEEDS.items()],
        "levels": {lv.name: {"reach_rate": (N_SEEDS_REQUESTED - (lv.name == "dark")) / N_SEEDS_REQUESTED}
                   for lv in protocol.protected.levels},
        "generator": {"name": "synthetic", "version": "1", "resolution": 64},
        "directions": {"path": "directions_synthetic.npz", "sha256": "0" * 64},
    })
    write_json(run.results / "summary.json", {"protocol": protocol.name, "target_fmr": TARGET_FMR,
                                              "schema": "faceaudit.summary/1",
                                              "models": {m: {"n_significant_contrasts": 3 if m == "alpha" else 1} for m in MODELS}})
    write_json(run.manifest, {
        "protocol_name": protocol.name, "seed": protocol.seed,
        "versions": {"faceaudit": "0.1.0", "python": "3.11.9", "numpy": np.__version__},
        "models": MODEL_METADATA,
        "stages": {},
    })
    return run.root


def _curve_tables(protocol, faces, pairs, scores, emb_status) -> dict[str, pd.DataFrame]:
    """results/roc, score_hist and det_bands computed by faceaudit.stats from the run's scores: the card
    draws its DET curves and score distributions only from these tables."""
    from faceaudit.stats.analyze import roc_table, score_hist_table
    from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    from faceaudit.stats.data import make_layout, prepare_model
    from faceaudit.stats.det import det_band_table

    layout = make_layout(faces, protocol.group_names)
    W = seed_weights(layout.S, 100, bootstrap_rng(protocol.seed))
    out: dict[str, list[pd.DataFrame]] = {"roc": [], "score_hist": [], "det_bands": []}
    for model in MODELS:
        md = prepare_model(model, pairs, scores[model], emb_status[model], faces, layout)
        out["roc"].append(roc_table(md))
        out["score_hist"].append(score_hist_table(md))
        out["det_bands"].append(det_band_table(md, W, 0.95))
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


if __name__ == "__main__":  # pragma: no cover - handy for looking at a report by hand
    import sys

    print(build_synthetic_run(sys.argv[1] if len(sys.argv) > 1 else "runs/synthetic"))
