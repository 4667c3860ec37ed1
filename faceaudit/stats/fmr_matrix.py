"""Cross-group impostor FMR matrix and counterfactual twins (``results/fmr_matrix.parquet``).

NIST FRTE Part 8 reports, besides the per-group FMR (impostors matched on demographics), the FMR of
impostors drawn from two *different* groups. Here, per model and operating point:

- ``kind == "impostor"``, every unordered pair of protected groups ``group_a <= group_b`` (protocol
  order). The diagonal (``group_a == group_b``) is the per-group FMR of ``error_rates`` (condition
  ``all``), copied from it, so the two tables agree exactly. An off-diagonal cell holds every
  comparison of a face of seed ``s`` in group ``a`` with a face of a *different* seed ``t`` in group
  ``b`` in the same edit condition (the matched-impostor design of :mod:`faceaudit.pairs` with the
  group constraint dropped), pooled over conditions; both faces must have enrolled. These pairs are not
  in ``pairs.parquet``: they are scored from the embeddings with the model's own similarity (a
  cosine model's by one matrix product per block, equal to the row-wise score up to rounding), one
  condition and one block of seeds at a time (memory ``O(S^2)`` per group pair, never the number of
  comparisons).
- ``kind == "twin"``: the prototype of seed ``s`` rendered at level ``a`` against its prototype at
  level ``b`` ("counterfactual twins": the same identity, recoloured or regendered). A score at or
  above the threshold means the model cannot tell a face from its own counterfactual. One comparison
  per seed.

Intervals: the method of the per-group FMR rows of ``error_rates``
(:func:`faceaudit.stats.primary.wilson_effective` on the dyadic-robust seed-pair variance of
:mod:`faceaudit.stats.dyadic`). For an off-diagonal cell, the dyad of a comparison is its unordered
seed pair, so ``(s in a, t in b)`` and ``(t in a, s in b)`` are summed into one dyad before the
variance is formed, as the within-group cells sum a seed pair's comparisons over conditions. A twin
cell has one comparison per seed (independent clusters): its variance is the binomial one, i.e. the
plain Wilson interval.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from faceaudit.stats.data import ALL
from faceaudit.stats.dyadic import small_sample_factor
from faceaudit.stats.primary import RATE_CI_METHOD, wilson_effective

__all__ = ["FMR_MATRIX_COLUMNS", "fmr_matrix_table", "dyadic_rate_variance"]

FMR_MATRIX_COLUMNS = ["model", "kind", "group_a", "group_b", "threshold_source", "target_fmr", "threshold", "fmr",
                      "fmr_lo", "fmr_hi", "n_impostor", "n_false_match", "n_seeds", "ci_level", "ci_method"]
#: comparisons scored per similarity call (bounds the memory of a row-wise similarity)
_CHUNK = 100_000


def dyadic_rate_variance(hits: np.ndarray, trials: np.ndarray) -> float:
    """Dyadic-robust variance of the rate ``hits.sum() / trials.sum()`` from ``(S, S)`` per-seed-pair counts.

    ``hits[s, t]``/``trials[s, t]``: false matches/comparisons of seed ``s`` (first side) with seed
    ``t`` (second side), ``s != t``. The unordered seed pair ``{s, t}`` is one dyad (both orders summed),
    then :class:`faceaudit.stats.dyadic.DyadicDesign` algebra: ``V_D = sum_s T_s^2 - sum_d E_d^2``,
    times the small-sample factor, floored at ``sum_d E_d^2``, divided by ``n^2``.

    Parameters
    ----------
    hits, trials : numpy.ndarray
        ``(S, S)`` counts (zero diagonal).

    Returns
    -------
    float
        Variance of the rate (NaN without comparisons).

    Examples
    --------
    >>> import numpy as np
    >>> n = np.ones((6, 6)) - np.eye(6)
    >>> h = np.zeros((6, 6)); h[0, 1] = 1
    >>> round(dyadic_rate_variance(h, n), 6)
    0.001111
    """
    n = float(trials.sum())
    if n == 0:
        return float("nan")
    rate = float(hits.sum()) / n
    x = hits - rate * trials
    d = x + x.T  # dyad {s, t}: both orders
    ee = float((d * d).sum()) / 2.0  # each dyad once
    t = d.sum(axis=1)
    present = int(((trials + trials.T).sum(axis=1) > 0).sum())
    v = max(small_sample_factor(present) * (float(t @ t) - ee), ee)
    return v / (n * n)


def _face_index(faces: pd.DataFrame, embeddings: pd.DataFrame, layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows[g, c, s], emb, ok)``: the face row of (group, condition, seed) (-1: absent), embeddings, enrolled."""
    emb = embeddings.drop_duplicates("face_id").set_index("face_id")
    emb = emb.reindex(faces["face_id"])
    ok = (emb["status"] == "ok").to_numpy()
    dim = next((len(e) for e, o in zip(emb["embedding"], ok) if o), 1)
    mat = np.zeros((len(faces), dim), dtype=np.float32)
    for i in np.flatnonzero(ok):
        mat[i] = np.asarray(emb["embedding"].iloc[i], dtype=np.float32)
    seed = layout.seed_index(faces["seed"].to_numpy(), "faces.parquet")
    group = layout.group_index(faces["group"].to_numpy(), "faces.parquet")
    cond = layout.condition_index(faces["edit_attr"].to_numpy(), faces["edit_level"].to_numpy(dtype=float), "faces.parquet")
    rows = np.full((layout.G, layout.C, layout.S), -1, dtype=np.int64)
    order = np.arange(len(faces))[::-1]  # the first face of a (group, condition, seed) wins
    rows[group[order], cond[order], seed[order]] = order
    return rows, mat, ok


def _is_cosine(similarity) -> bool:
    """The base class's cosine (every built-in but dlib): blocks can then be scored by matrix products."""
    if isinstance(similarity, str):
        return similarity == "cosine"
    from faceaudit.models.base import FaceRecognizer

    return getattr(similarity, "func", similarity) is FaceRecognizer.similarity


def _scores(emb: np.ndarray, ra: np.ndarray, rb: np.ndarray, similarity: str | Callable) -> np.ndarray:
    """Row-wise similarity of rows ``ra`` and ``rb`` (paired), in chunks."""
    out = np.empty(len(ra))
    for i in range(0, len(ra), _CHUNK):
        a, b = emb[ra[i:i + _CHUNK]], emb[rb[i:i + _CHUNK]]
        if isinstance(similarity, str):  # "cosine", as FaceRecognizer.similarity computes it
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            out[i:i + _CHUNK] = (a64 * b64).sum(axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
        else:
            out[i:i + _CHUNK] = similarity(a, b)
    return out


def _cross_counts(rows, emb, ok, ga: int, gb: int, thresholds: list[float], similarity) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(trials, [hits per threshold])``: ``(S, S)`` counts of comparisons seed s (group ga) x seed t (group gb), s != t."""
    _, C, S = rows.shape
    trials = np.zeros((S, S))
    hits = [np.zeros((S, S)) for _ in thresholds]
    unit = None
    if _is_cosine(similarity):
        e64 = emb.astype(np.float64)
        norm = np.linalg.norm(e64, axis=1, keepdims=True)
        unit = e64 / np.where(norm > 0, norm, 1.0)
    for c in range(C):
        ra_all, rb_all = rows[ga, c], rows[gb, c]
        sa = np.flatnonzero((ra_all >= 0) & ok[np.maximum(ra_all, 0)])
        sb = np.flatnonzero((rb_all >= 0) & ok[np.maximum(rb_all, 0)])
        if len(sa) == 0 or len(sb) == 0:
            continue
        step = max(1, _CHUNK // len(sb))
        for i in range(0, len(sa), step):
            # one dense block: seeds sa[i:i+step] of group ga x every seed of group gb (s != t)
            s, t = np.meshgrid(sa[i:i + step], sb, indexing="ij")
            keep = s != t
            if not keep.any():
                continue
            if unit is not None:  # cosine: one matrix product per block (equal to the row-wise value up to rounding)
                sc = unit[ra_all[sa[i:i + step]]] @ unit[rb_all[sb]].T
                sc[~keep] = -np.inf
            else:
                sc = np.full(s.shape, -np.inf)
                sc[keep] = _scores(emb, ra_all[s[keep]], rb_all[t[keep]], similarity)
            if not np.all(np.isfinite(sc[keep])):
                from faceaudit.core.errors import BadInput

                j = np.argwhere(keep & ~np.isfinite(sc))[0]
                raise BadInput(f"similarity is NaN/inf for a cross-group impostor pair (seed indices {s[tuple(j)]}, {t[tuple(j)]})")
            block = np.ix_(sa[i:i + step], sb)
            trials[block] += keep
            for h, thr in zip(hits, thresholds):
                h[block] += sc >= thr
    return trials, hits


def fmr_matrix_table(model: str, faces: pd.DataFrame, embeddings: pd.DataFrame, layout, error_rates: pd.DataFrame,
                     similarity: str | Callable = "cosine", level: float = 0.95) -> pd.DataFrame:
    """The ``fmr_matrix`` rows of one model at every global threshold of its ``error_rates`` rows.

    Parameters
    ----------
    model : str
        Model name (rows of ``error_rates`` with this ``model``).
    faces : pandas.DataFrame
        ``faces.parquet`` (``face_id``, ``seed``, ``group``, ``edit_attr``, ``edit_level``).
    embeddings : pandas.DataFrame
        The model's ``embeddings/MODEL.parquet`` (``face_id``, ``status``, ``embedding``).
    layout : faceaudit.stats.data.Layout
        The run's index space (:func:`faceaudit.stats.data.make_layout`).
    error_rates : pandas.DataFrame
        ``results/error_rates.parquet`` (the thresholds, and the diagonal cells).
    similarity : "cosine" or callable
        The model's row-wise similarity (higher = more similar), as in :func:`faceaudit.pairs.score_pairs`.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FMR_MATRIX_COLUMNS`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from faceaudit.stats.data import make_layout
    >>> faces = pd.DataFrame({"face_id": [f"{s}{g}" for s in range(6) for g in "ab"],
    ...                       "seed": [s for s in range(6) for _ in "ab"], "group": ["g=a", "g=b"] * 6,
    ...                       "edit_attr": "none", "edit_level": 0.0})
    >>> rng = np.random.default_rng(0)
    >>> emb = pd.DataFrame({"face_id": faces["face_id"], "status": "ok",
    ...                     "embedding": list(rng.normal(size=(12, 8)).astype(np.float32))})
    >>> layout = make_layout(faces, ["g=a", "g=b"])
    >>> er = pd.DataFrame({"model": "m", "group": ["g=a", "g=b"], "edit_attr": "all", "target_fmr": 0.1,
    ...                    "threshold": 0.3, "fmr": 0.0, "fmr_lo": 0.0, "fmr_hi": 0.2, "n_impostor": 15,
    ...                    "n_false_match": 0, "n_seeds": 6})
    >>> t = fmr_matrix_table("m", faces, emb, layout, er)
    >>> t[["kind", "group_a", "group_b", "n_impostor"]].values.tolist()
    [['impostor', 'g=a', 'g=a', 15], ['impostor', 'g=a', 'g=b', 30], ['impostor', 'g=b', 'g=b', 15], ['twin', 'g=a', 'g=b', 6]]
    """
    er = error_rates[(error_rates["model"] == model) & (error_rates["edit_attr"] == ALL)]
    er = er[er["target_fmr"].notna()]
    if "threshold_source" in er.columns:  # other operating points are added by their own code path
        er = er[er["threshold_source"] == "target_fmr"]
    ops = er.drop_duplicates("target_fmr")[["target_fmr", "threshold"]]
    ops = ops[np.isfinite(ops["threshold"].to_numpy(dtype=float))]
    if not len(ops):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FMR_MATRIX_COLUMNS})
    targets, thresholds = ops["target_fmr"].tolist(), ops["threshold"].astype(float).tolist()
    rows, emb, ok = _face_index(faces, embeddings, layout)
    G = layout.G
    out = []

    def row(kind, a, b, t, thr, e, n, lo, hi, n_seeds):
        return {"model": model, "kind": kind, "group_a": layout.groups[a], "group_b": layout.groups[b],
                "threshold_source": "target_fmr", "target_fmr": float(t), "threshold": float(thr),
                "fmr": e / n if n > 0 else float("nan"), "fmr_lo": float(lo), "fmr_hi": float(hi),
                "n_impostor": int(n), "n_false_match": int(e), "n_seeds": int(n_seeds), "ci_level": level,
                "ci_method": RATE_CI_METHOD}

    by_group = er.set_index(["group", "target_fmr"])
    for a in range(G):
        for b in range(a, G):
            if a == b:  # the per-group FMR, as error_rates reports it
                for t, thr in zip(targets, thresholds):
                    r = by_group.loc[(layout.groups[a], t)]
                    d = row("impostor", a, a, t, thr, r["n_false_match"], r["n_impostor"], r["fmr_lo"], r["fmr_hi"],
                            r["n_seeds"])
                    d["fmr"] = float(r["fmr"])
                    out.append(d)
                continue
            trials, hits = _cross_counts(rows, emb, ok, a, b, thresholds, similarity)
            n = float(trials.sum())
            present = int(((trials + trials.T).sum(axis=1) > 0).sum())
            for t, thr, h in zip(targets, thresholds, hits):
                e = float(h.sum())
                lo, hi = wilson_effective([e], [n], [dyadic_rate_variance(h, trials)], level)
                out.append(row("impostor", a, b, t, thr, e, n, lo[0], hi[0], present))
    # counterfactual twins: prototype of seed s at level a vs at level b
    proto = 0  # condition 0 is the prototype ("none" sorts first in the layout)
    for a in range(G if layout.conditions and layout.conditions[0][0] == "none" else 0):
        for b in range(a + 1, G):
            ra, rb = rows[a, proto], rows[b, proto]
            s = np.flatnonzero((ra >= 0) & (rb >= 0))
            s = s[ok[ra[s]] & ok[rb[s]]]
            sc = _scores(emb, ra[s], rb[s], similarity) if len(s) else np.zeros(0)
            n = float(len(s))
            for t, thr in zip(targets, thresholds):
                e = float((sc >= thr).sum())
                p = e / n if n else np.nan
                lo, hi = wilson_effective([e], [n], [p * (1 - p) / n if n else np.nan], level)
                out.append(row("twin", a, b, t, thr, e, n, lo[0], hi[0], len(s)))
    df = pd.DataFrame(out, columns=FMR_MATRIX_COLUMNS)
    return df.sort_values(["kind", "target_fmr"], kind="stable").reset_index(drop=True)
