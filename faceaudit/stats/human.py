"""Human ratings as statistics: rater quality, consensus identity, agreement, human vs machine.

Inputs are the exported ``annotations`` table (one row per rating: ``rater, task_id, kind, item,
question, value, check_kind``) and the run's pairs and scores. Definitions (docs/annotate.md):

* **Rater quality**: attention checks are identical pairs (pass when rated 4 or 5, "probably /
  definitely the same") and obviously different pairs (pass when rated 1 or 2). A rater whose pass
  rate is below ``min_pass`` is flagged and left out of the consensus.
* **Consensus identity** of a pair: the mean of its "same person?" ratings rescaled to [0, 1]
  ((code - 1) / 4) over the retained raters. Its CI is a Wilson score interval on a quasi-binomial
  mean: ratings in [0, 1] have variance phi * mu * (1 - mu) with phi <= 1, phi pooled over all pairs
  (Pearson estimator), so each pair counts as n / phi effective Bernoulli trials. Unlike a t-interval
  it does not collapse to a point when every rater gives the same answer.
* **Agreement**: Krippendorff's alpha (package ``krippendorff``) per question, at each question's
  level of measurement (and "interval" on the rescaled same-person scale).
* **Human vs machine**, per model and group over the rated pairs: AUC of the model's score for the
  human decision (consensus >= 0.5), Spearman and Pearson correlation with the consensus, human
  FNMR/FMR (genuine pairs humans call different, impostor pairs they call the same) next to the
  model's FNMR/FMR at its threshold, plus FNMR on genuine pairs filtered (consensus >= 0.5) or
  weighted (weight = consensus) by the human consensus.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.rating_scales import IMAGE_QUESTIONS, SAME, rescale_same

__all__ = ["PASS_IDENTICAL", "PASS_DIFFERENT", "DEFAULT_MIN_PASS", "DECISION", "rater_quality",
           "consensus_identity", "agreement", "human_vs_machine",
           "genuine_weights"]

PASS_IDENTICAL = (4, 5)
PASS_DIFFERENT = (1, 2)
DEFAULT_MIN_PASS = 0.75
DECISION = 0.5


def rater_quality(annotations: pd.DataFrame, min_pass: float = DEFAULT_MIN_PASS) -> pd.DataFrame:
    """Per rater: ratings, attention checks answered and passed, pass rate, ``flagged``.

    Parameters
    ----------
    annotations : pandas.DataFrame
        The exported ratings (``rater, question, value, check_kind``, ...).
    min_pass : float
        A rater passing a smaller share of the attention checks is flagged.

    Returns
    -------
    pandas.DataFrame
        ``rater, n_ratings, n_checks, n_checks_passed, check_pass_rate, flagged``.

    Examples
    --------
    >>> from faceaudit.rating_scales import SAME
    >>> a = pd.DataFrame({"rater": ["r1", "r1", "r2", "r2"], "question": SAME.key, "value": [5, 1, 1, 5],
    ...                   "check_kind": ["identical", "different"] * 2})
    >>> rater_quality(a)[["rater", "check_pass_rate", "flagged"]].values.tolist()
    [['r1', 1.0, False], ['r2', 0.0, True]]
    """
    a = annotations
    raters = sorted(a["rater"].unique())
    checks = a[(a["question"] == SAME.key) & a["check_kind"].isin(["identical", "different"])]
    passed = np.where(checks["check_kind"] == "identical", checks["value"].isin(PASS_IDENTICAL),
                      checks["value"].isin(PASS_DIFFERENT))
    c = checks.assign(passed=passed).groupby("rater")["passed"].agg(["size", "sum"])
    n_ratings = a[a["question"] != "comment"].groupby("rater").size()
    out = pd.DataFrame({"rater": raters})
    out["n_ratings"] = out["rater"].map(n_ratings).fillna(0).astype(int)
    out["n_checks"] = out["rater"].map(c["size"]).fillna(0).astype(int)
    out["n_checks_passed"] = out["rater"].map(c["sum"]).fillna(0).astype(int)
    out["check_pass_rate"] = np.where(out["n_checks"] > 0, out["n_checks_passed"] / out["n_checks"].clip(lower=1), np.nan)
    out["flagged"] = (out["n_checks"] > 0) & (out["check_pass_rate"] < min_pass)
    return out


def _same_ratings(annotations: pd.DataFrame, keep_raters: Optional[set] = None) -> pd.DataFrame:
    a = annotations[(annotations["question"] == SAME.key) & (annotations["check_kind"].fillna("") == "")
                    & (annotations["kind"] == "pair")]
    if keep_raters is not None:
        a = a[a["rater"].isin(keep_raters)]
    return a.assign(score=rescale_same(a["value"].astype(float)))


def _quasi_binomial_dispersion(groups: pd.core.groupby.SeriesGroupBy) -> float:
    """Pearson estimate of phi in Var = phi * mu (1 - mu), pooled over items with 0 < mean < 1."""
    stats = groups.agg(["mean", "var", "size"])
    inner = stats[(stats["size"] > 1) & (stats["mean"] > 0) & (stats["mean"] < 1)]
    if inner.empty:
        return 1.0
    num = ((inner["size"] - 1) * inner["var"] / (inner["mean"] * (1 - inner["mean"]))).sum()
    phi = float(num / (inner["size"] - 1).sum())
    return float(np.clip(phi, 1e-3, 1.0))


def _wilson_interval(mean: np.ndarray, n_eff: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a proportion ``mean`` out of ``n_eff`` (possibly fractional) trials."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(np.asarray(mean) * np.asarray(n_eff), np.asarray(n_eff), alpha=1 - level, method="wilson")
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def consensus_identity(annotations: pd.DataFrame, pairs: Optional[pd.DataFrame] = None,
                       quality: Optional[pd.DataFrame] = None, level: float = 0.95) -> pd.DataFrame:
    """results/human_identity: one row per rated pair (attention checks excluded).

    Parameters
    ----------
    annotations : pandas.DataFrame
        The exported ratings.
    pairs : pandas.DataFrame, optional
        The run's pairs: item ids are mapped back to its ``pair_id`` and its columns joined.
    quality : pandas.DataFrame, optional
        :func:`rater_quality`; flagged raters are left out.
    level : float
        Confidence level of the Wilson interval.

    Returns
    -------
    pandas.DataFrame
        ``pair_id, n_raters, consensus, ci_lo, ci_hi, sd, share_same, dispersion`` (plus the pair's
        ``kind, group, edit_attr, edit_level`` with ``pairs``).

    Examples
    --------
    >>> from faceaudit.rating_scales import SAME
    >>> a = pd.DataFrame({"rater": ["r1", "r2", "r3"] * 2, "item": ["7"] * 3 + ["8"] * 3, "question": SAME.key,
    ...                   "value": [5, 5, 4, 1, 2, 1], "check_kind": None, "kind": "pair"})
    >>> h = consensus_identity(a)
    >>> h["pair_id"].tolist(), h["consensus"].round(3).tolist(), h["n_raters"].tolist()
    ([7, 8], [0.917, 0.083], [3, 3])
    >>> bool(((h["ci_lo"] < h["consensus"]) & (h["consensus"] < h["ci_hi"])).all())
    True
    """
    keep = set(quality.loc[~quality["flagged"], "rater"]) if quality is not None else None
    r = _same_ratings(annotations, keep)
    cols = ["pair_id", "n_raters", "consensus", "ci_lo", "ci_hi", "sd", "share_same", "dispersion"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    g = r.groupby("item")["score"]
    phi = _quasi_binomial_dispersion(g)
    agg = g.agg(["size", "mean", "std"]).reset_index()
    lo, hi = _wilson_interval(agg["mean"].to_numpy(), agg["size"].to_numpy() / phi, level)
    if pairs is not None:  # items are pair ids as text: map them back to the run's own ids (and dtype)
        pair_id = agg["item"].map({str(p): p for p in pairs["pair_id"]})
        if pair_id.isna().any():
            raise BadInput(f"annotations: pairs {sorted(agg['item'][pair_id.isna()])[:5]} are not in pairs.parquet "
                           "(was the run re-scored after the ratings were planned?)")
    else:
        pair_id = pd.to_numeric(agg["item"], errors="coerce").astype("Int64") if agg["item"].str.isdigit().all() else agg["item"]
    out = pd.DataFrame({"pair_id": pair_id.to_numpy(), "n_raters": agg["size"].astype(int),
                        "consensus": agg["mean"], "ci_lo": lo, "ci_hi": hi, "sd": agg["std"],
                        "share_same": r.groupby("item")["value"].apply(lambda v: float((v >= 4).mean())).to_numpy(),
                        "dispersion": phi})
    if pairs is not None:
        out = out.merge(pairs[["pair_id", "kind", "group", "edit_attr", "edit_level"]], on="pair_id", how="left")
    return out.sort_values("pair_id").reset_index(drop=True)


def _alpha(matrix: np.ndarray, level: str) -> float:
    import krippendorff

    usable = (~np.isnan(matrix)).sum(axis=0) >= 2
    if usable.sum() < 2 or len(np.unique(matrix[:, usable][~np.isnan(matrix[:, usable])])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=matrix[:, usable], level_of_measurement=level))


def agreement(annotations: pd.DataFrame, keep_raters: Optional[set] = None) -> pd.DataFrame:
    """Krippendorff's alpha per question (attention checks excluded).

    Parameters
    ----------
    annotations : pandas.DataFrame
        The exported ratings.
    keep_raters : set, optional
        Only these raters' ratings count.

    Returns
    -------
    pandas.DataFrame
        ``question, level, alpha, n_items, n_raters, n_ratings``.

    Examples
    --------
    >>> from faceaudit.rating_scales import SAME
    >>> a = pd.DataFrame({"rater": ["r1"] * 3 + ["r2"] * 3, "item": ["1", "2", "3"] * 2, "question": SAME.key,
    ...                   "value": [5, 1, 4] * 2, "check_kind": None, "kind": "pair"})
    >>> agreement(a)[["level", "alpha", "n_items"]].values.tolist()  # two raters who always agree
    [['ordinal', 1.0, 3], ['interval', 1.0, 3]]
    """
    a = annotations[(annotations["check_kind"].fillna("") == "") & (annotations["question"] != "comment")]
    if keep_raters is not None:
        a = a[a["rater"].isin(keep_raters)]
    rows = []
    specs = [(SAME.key, SAME.level), (SAME.key, "interval")] + [(q.key, q.level) for q in IMAGE_QUESTIONS]
    for key, level in specs:
        d = a[a["question"] == key]
        if d.empty:
            continue
        m = d.pivot_table(index="rater", columns="item", values="value", aggfunc="first").to_numpy(dtype=float)
        rows.append({"question": key, "level": level, "alpha": _alpha(m, level), "n_items": int(d["item"].nunique()),
                     "n_raters": int(d["rater"].nunique()), "n_ratings": int(len(d))})
    return pd.DataFrame(rows, columns=["question", "level", "alpha", "n_items", "n_raters", "n_ratings"])


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(x, y).statistic), float(stats.pearsonr(x, y).statistic)


def human_vs_machine(human: pd.DataFrame, scores: dict[str, pd.DataFrame], thresholds: dict[str, float]) -> pd.DataFrame:
    """Per model and group (plus ``all``): how the model's scores agree with the human consensus.

    Parameters
    ----------
    human : pandas.DataFrame
        :func:`consensus_identity` with the pairs' columns (``pair_id, consensus, kind, group``).
    scores : dict of str to pandas.DataFrame
        Per model: its scores (``pair_id, score, status``).
    thresholds : dict of str to float
        Per model: its decision threshold; models without one are skipped.

    Returns
    -------
    pandas.DataFrame
        One row per (model, group): AUC, correlations, decision agreement, human and machine
        FNMR/FMR (see the module docstring).

    Examples
    --------
    >>> human = pd.DataFrame({"pair_id": [1, 2, 3, 4], "consensus": [0.9, 0.2, 0.8, 0.1],
    ...                       "kind": ["genuine", "genuine", "genuine", "impostor"], "group": "g"})
    >>> sc = pd.DataFrame({"pair_id": [1, 2, 3, 4], "score": [0.7, 0.6, 0.2, 0.1], "status": "ok"})
    >>> r = human_vs_machine(human, {"m": sc}, {"m": 0.5}).set_index("group")
    >>> r.loc["all", ["n_pairs", "human_fnmr", "machine_fnmr", "machine_fnmr_confirmed"]].tolist()
    [4.0, 0.3333333333333333, 0.3333333333333333, 0.5]
    """
    rows = []
    for model, sc in scores.items():
        if model not in thresholds:
            continue
        thr = thresholds[model]
        d = human.merge(sc[["pair_id", "score", "status"]], on="pair_id", how="inner")
        d = d[d["status"] == "ok"]
        for group in sorted(d["group"].dropna().unique()) + ["all"]:
            g = d if group == "all" else d[d["group"] == group]
            if g.empty:
                continue
            human_same = (g["consensus"] >= DECISION).to_numpy()
            machine_same = (g["score"] >= thr).to_numpy()
            gen, imp = (g["kind"] == "genuine").to_numpy(), (g["kind"] == "impostor").to_numpy()
            w = g["consensus"].to_numpy()
            rho, r = _corr(g["score"].to_numpy(), g["consensus"].to_numpy())
            confirmed = gen & human_same
            rows.append({
                "model": model, "group": group, "threshold": thr, "n_pairs": int(len(g)),
                "n_genuine": int(gen.sum()), "n_impostor": int(imp.sum()),
                "auc": _auc(human_same.astype(int), g["score"].to_numpy()), "spearman": rho, "pearson": r,
                "decision_agreement": float((human_same == machine_same).mean()),
                "human_fnmr": float((~human_same[gen]).mean()) if gen.any() else np.nan,
                "human_fmr": float(human_same[imp].mean()) if imp.any() else np.nan,
                "machine_fnmr": float((~machine_same[gen]).mean()) if gen.any() else np.nan,
                "machine_fmr": float(machine_same[imp].mean()) if imp.any() else np.nan,
                "n_genuine_confirmed": int(confirmed.sum()),
                "machine_fnmr_confirmed": float((~machine_same[confirmed]).mean()) if confirmed.any() else np.nan,
                "machine_fnmr_weighted": float(((~machine_same[gen]) * w[gen]).sum() / w[gen].sum())
                if gen.any() and w[gen].sum() > 0 else np.nan,
            })
    return pd.DataFrame(rows)


def genuine_weights(pairs: pd.DataFrame, human: pd.DataFrame, mode: str = "filter", min_consensus: float = DECISION) -> pd.Series:
    """Weight of each pair for error rates that respect human judgement.

    ``filter``: genuine pairs whose consensus is below ``min_consensus`` get 0 (humans say the edit
    changed the identity), others 1; ``weight``: genuine pairs get their consensus. Impostor and
    unrated pairs keep weight 1. Indexed like ``pairs``.

    Parameters
    ----------
    pairs : pandas.DataFrame
        The run's pairs (``pair_id, kind``).
    human : pandas.DataFrame
        Consensus per rated pair (:func:`consensus_identity`: ``pair_id, consensus``).
    mode : {"filter", "weight"}
        How the consensus becomes a weight.
    min_consensus : float
        With ``filter``: the smallest consensus a genuine pair keeps weight 1 with.

    Returns
    -------
    pandas.Series

    Examples
    --------
    >>> pairs = pd.DataFrame({"pair_id": [1, 2, 3, 4], "kind": ["genuine", "genuine", "impostor", "genuine"]})
    >>> human = pd.DataFrame({"pair_id": [1, 2, 3], "consensus": [0.9, 0.25, 0.1]})
    >>> genuine_weights(pairs, human).tolist(), genuine_weights(pairs, human, mode="weight").tolist()
    ([1.0, 0.0, 1.0, 1.0], [0.9, 0.25, 1.0, 1.0])
    """
    if mode not in ("filter", "weight"):
        raise ValueError(f"mode must be 'filter' or 'weight', got {mode!r}")
    c = pairs["pair_id"].map(human.set_index("pair_id")["consensus"])
    gen = (pairs["kind"] == "genuine") & c.notna()
    w = pd.Series(1.0, index=pairs.index)
    w[gen] = (c[gen] >= min_consensus).astype(float) if mode == "filter" else c[gen]
    return w
