"""Error rates of a user's own comparison scores, in memory: :class:`ErrorRates` (shaped like
Fairlearn's ``MetricFrame``).

Input: one row per comparison with ``kind`` (``genuine``/``impostor``), ``score`` (higher = more
similar), a group column and the identity column(s). Every number is computed with the definitions
the audits use (docs/statistics.md), with identities in the role of the audit's seeds:

- the threshold: a fixed ``threshold``, or the global threshold at ``target_fmr`` on all impostor
  scores (:func:`faceaudit.stats.thresholds.threshold_at_fmr`, candidates = every score), held fixed
  for every group; a comparison matches when ``score >= threshold``;
- FNMR intervals (and every genuine-side replicate): the identity-clustered bootstrap, one weight
  matrix ``W[b, identity]`` (:func:`faceaudit.stats.bootstrap.seed_weights`) shared by every group, so a
  difference between groups is paired; percentile intervals;
- impostor pairs between two identities (``cluster=("identity_a", "identity_b")``): a replicate keeps
  the pair with the multiplicity of *both* identities (weight ``W[b, a] * W[b, b']``,
  :func:`faceaudit.stats.bootstrap.pair_quadform`); those replicates feed :meth:`ErrorRates.max_geomean`.
  The reported FMR intervals and FMR contrasts use the dyadic-robust variance the audits use
  (:mod:`faceaudit.stats.dyadic`; logit scale for a rate, log scale for a ratio), because the product
  weight counts pair-level noise about three times when seed effects cancel (docs/statistics.md);
- with one cluster column every comparison belongs to one identity and every interval, FMR included,
  is the one-way cluster bootstrap's percentile interval.

With the same identities, ``n_boot`` and ``random_state`` equal to the protocol's ``seed``, the numbers
equal those of ``faceaudit import scores FILE --audit`` in ``results/error_rates.parquet`` and
``results/contrasts.parquet`` (tests/test_score_rates.py checks it).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from faceaudit.stats import thresholds as T
from faceaudit.stats.bootstrap import (CI_METHOD, bootstrap_rng, pair_quadform, percentile_ci, resolved_pvalue,
                                       seed_weights)
from faceaudit.stats.dyadic import DYADIC_METHOD, DyadicDesign, normal_interval, rate_influence
from faceaudit.stats.fairness import max_geomean
from faceaudit.stats.primary import wilson_effective

__all__ = ["ErrorRates", "SMOOTHING", "BY_GROUP_COLUMNS", "simulate_score_pairs"]

#: pseudo-counts of the smoothed rates that enter ratios (the audits' convention), and how it is written down
PSEUDO_ERRORS, PSEUDO_TRIALS = 0.5, 1.0
SMOOTHING = "(errors + 0.5) / (trials + 1)"

BY_GROUP_COLUMNS = ["group", "threshold", "n_genuine", "n_impostor", "false_non_matches", "false_matches",
                    "fnmr", "fnmr_lo", "fnmr_hi", "fmr", "fmr_lo", "fmr_hi", "n_identities", "ci_level",
                    "fnmr_ci_method", "fmr_ci_method"]
_KINDS = ("genuine", "impostor")


def _replicate_variance(replicates: np.ndarray) -> float:
    """Variance of a rate's bootstrap replicates (NaN replicates of empty resamples left out)."""
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    return float(np.var(r, ddof=1)) if len(r) > 1 else float("nan")


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _smoothed(num, den):
    return (num + PSEUDO_ERRORS) / (den + PSEUDO_TRIALS)


class ErrorRates:
    """FMR and FNMR per group at one operating point, with identity-clustered intervals.

    Parameters
    ----------
    pairs : pandas.DataFrame
        One row per comparison: ``kind`` (``genuine``/``impostor``), ``score`` (higher = more similar),
        the ``group`` column and the ``cluster`` column(s).
    group : str
        Column naming each comparison's group.
    cluster : str or sequence of str
        The identity column(s). One column: each comparison belongs to that identity (a one-way
        cluster bootstrap). Two columns (``("identity_a", "identity_b")``): a genuine pair has the same
        identity in both, an impostor pair two different ones and is kept with the multiplicity of both.
    target_fmr : float, optional
        Set the threshold at this FMR on all impostor scores (the audits' global threshold).
    threshold : float, optional
        A fixed threshold instead (give exactly one of ``target_fmr`` and ``threshold``).
    n_boot : int
        Bootstrap replicates (identities resampled with replacement).
    ci_level : float
        Confidence level of every interval.
    random_state : int
        Seed of the bootstrap (the audit's RNG is ``bootstrap_rng(protocol seed)``, the same function).

    Attributes
    ----------
    threshold : float
        The operating point.
    groups : list of str
        Groups in sorted order (the default reference is the first).
    by_group : pandas.DataFrame
        One row per group: ``BY_GROUP_COLUMNS``.
    overall : pandas.DataFrame
        The same columns for every comparison pooled (one row, ``group == "all"``).

    Notes
    -----
    Rates and their intervals are the audits' (``results/error_rates.parquet`` of ``faceaudit import
    scores FILE --audit``: the same numbers); contrast intervals too. The p-values of
    :meth:`difference` and :meth:`ratio` invert those intervals (bootstrap for FNMR, dyadic-robust
    for FMR with two identity columns), whereas the audit's contrasts carry the identity sign-flip
    test of its primary analysis (``p_method``); both are documented in docs/statistics.md.

    Raises
    ------
    ValueError
        A missing column, a kind other than genuine/impostor, a non-finite score, no impostor pair
        with ``target_fmr``, a genuine pair across two identities or an impostor pair within one,
        or not exactly one of ``target_fmr`` and ``threshold``.

    Examples
    --------
    >>> from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs
    >>> pairs = simulate_score_pairs(n_identities=30, shift={"B": -1.0}, seed=1)
    >>> er = ErrorRates(pairs, group="group", cluster=("identity_a", "identity_b"), target_fmr=0.01, n_boot=200)
    >>> er.by_group[["group", "n_genuine", "n_impostor"]].to_string(index=False)
    'group  n_genuine  n_impostor\\n    A         90         435\\n    B         90         435'
    >>> d = er.difference().set_index("metric")
    >>> bool(d.loc["fnmr_diff", "ci_lo"] > 0)  # group B's genuine scores were planted lower
    True
    """

    def __init__(self, pairs: pd.DataFrame, *, group: str, cluster, target_fmr: Optional[float] = None,
                 threshold: Optional[float] = None, n_boot: int = 1000, ci_level: float = 0.95,
                 random_state: int = 0):
        if (target_fmr is None) == (threshold is None):
            raise ValueError("give exactly one of target_fmr and threshold")
        if not 0.5 < ci_level < 1:
            raise ValueError(f"ci_level must be in (0.5, 1), got {ci_level}")
        if n_boot < 1:
            raise ValueError("n_boot must be at least 1")
        cols = [cluster] if isinstance(cluster, str) else list(cluster)
        if len(cols) not in (1, 2):
            raise ValueError(f"cluster: one or two identity columns, got {cols}")
        missing = [c for c in ["kind", "score", group, *cols] if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs: missing columns {missing}")
        kind = pairs["kind"].to_numpy(dtype=object)
        bad = ~np.isin(kind, _KINDS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"pairs: kind {kind[i]!r} in row {i + 1} (expected genuine|impostor)")
        score = pd.to_numeric(pairs["score"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(score)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"pairs: score {pairs['score'].iloc[i]!r} in row {i + 1} is not a finite number")
        gvals = pairs[group].to_numpy(dtype=object)
        self.groups: list = sorted(pd.unique(gvals).tolist())
        gidx = pd.Index(self.groups).get_indexer(gvals)

        ids = [pairs[c].to_numpy(dtype=object) for c in cols]
        identities = sorted(pd.unique(np.concatenate(ids)).tolist())
        lookup = pd.Index(identities)
        ia = lookup.get_indexer(ids[0])
        ib = lookup.get_indexer(ids[-1])
        gen = kind == "genuine"
        self.dyadic = len(cols) == 2
        if self.dyadic:
            wrong = (gen & (ia != ib)) | (~gen & (ia == ib))
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise ValueError(f"pairs: row {i + 1} is {kind[i]} with {cols[0]}={ids[0][i]!r}, {cols[1]}={ids[1][i]!r} "
                                 "(a genuine pair has one identity, an impostor pair two)")
        self.cluster = cols
        self.group_column = group
        self.ci_level = float(ci_level)
        self.n_boot = int(n_boot)
        self.random_state = random_state
        self.n_identities = len(identities)

        S, G = self.n_identities, len(self.groups)
        imp = ~gen
        if target_fmr is not None:
            if not imp.any():
                raise ValueError("pairs: no impostor pair, so no threshold at a target FMR")
            self.threshold = T.threshold_at_fmr(score[imp], float(target_fmr), candidates=score)
        else:
            if not np.isfinite(threshold):
                raise ValueError(f"threshold must be finite, got {threshold}")
            self.threshold = float(threshold)
        self.target_fmr = None if target_fmr is None else float(target_fmr)
        t = self.threshold
        self._W = seed_weights(S, self.n_boot, bootstrap_rng(random_state))
        W = self._W

        # genuine side: one identity per pair -> (S x G) per-identity counts, replicates W @ M
        fnm = (gen & (score < t)).astype(float)
        self._g_err = np.bincount(gidx[gen], weights=fnm[gen], minlength=G).astype(float)
        self._g_n = np.bincount(gidx[gen], minlength=G).astype(float)
        Mn = np.zeros((S, G))
        Me = np.zeros((S, G))
        np.add.at(Mn, (ia[gen], gidx[gen]), 1.0)
        np.add.at(Me, (ia[gen], gidx[gen]), fnm[gen])
        self._g_err_b, self._g_n_b = W @ Me, W @ Mn
        self._g_ids = (Mn > 0)

        # impostor side
        fm = (imp & (score >= t)).astype(float)
        self._i_err = np.bincount(gidx[imp], weights=fm[imp], minlength=G).astype(float)
        self._i_n = np.bincount(gidx[imp], minlength=G).astype(float)
        if self.dyadic:
            a, b, g_imp, hit = ia[imp], ib[imp], gidx[imp], fm[imp]
            self._i_err_b = np.column_stack([pair_quadform(W, a[g_imp == k], b[g_imp == k], hit[g_imp == k], S)
                                             for k in range(G)]) if G else np.zeros((self.n_boot, 0))
            self._i_n_b = np.column_stack([pair_quadform(W, a[g_imp == k], b[g_imp == k], np.ones((g_imp == k).sum()), S)
                                           for k in range(G)]) if G else np.zeros((self.n_boot, 0))
            self._dyad = DyadicDesign.from_pairs(a, b, S)
            self._imp_group, self._imp_hit = g_imp, hit
            ids_imp = np.zeros((S, G), dtype=bool)
            ids_imp[a, g_imp] = True
            ids_imp[b, g_imp] = True
        else:
            Mi_n = np.zeros((S, G))
            Mi_e = np.zeros((S, G))
            np.add.at(Mi_n, (ia[imp], gidx[imp]), 1.0)
            np.add.at(Mi_e, (ia[imp], gidx[imp]), fm[imp])
            self._i_err_b, self._i_n_b = W @ Mi_e, W @ Mi_n
            ids_imp = Mi_n > 0
        self._ids = self._g_ids | ids_imp
        self._score, self._gen, self._gidx = score, gen, gidx
        self.by_group = self._table()
        self.overall = self._overall()

    # ---- per group -------------------------------------------------------------------------
    # Rates get the audits' interval (error_rates): a Wilson score interval on the cluster-adjusted
    # effective counts, the design effect taken from the identity-clustered variance of the rate (the
    # bootstrap's for FNMR and one-way FMR, the dyadic-robust identity-pair variance for two-way FMR).
    _FNMR_METHOD = "wilson score interval on cluster-adjusted effective counts (identity-cluster bootstrap variance)"

    @property
    def _fmr_method(self) -> str:
        variance = "dyadic-robust identity-pair variance" if self.dyadic else "identity-cluster bootstrap variance"
        return f"wilson score interval on cluster-adjusted effective counts ({variance})"

    def _wilson(self, errors, trials, variance) -> tuple[float, float]:
        lo, hi = wilson_effective([errors], [trials], [variance], self.ci_level)
        return float(lo[0]), float(hi[0])

    def _fmr_variance(self, k: Optional[int]) -> float:
        """Clustered variance of group ``k``'s FMR (``None``: every impostor pair)."""
        if self.dyadic:
            mask = np.ones(len(self._imp_hit), dtype=bool) if k is None else self._imp_group == k
            u, _, n = rate_influence(self._imp_hit, np.ones(len(self._imp_hit)), mask)
            return float(self._dyad.variance(u, mask)) / n ** 2
        if k is None:
            return _replicate_variance(_ratio(self._i_err_b.sum(axis=1), self._i_n_b.sum(axis=1)))
        return _replicate_variance(_ratio(self._i_err_b[:, k], self._i_n_b[:, k]))

    def _fmr_interval(self, k: int) -> tuple[float, float]:
        if self._i_n[k] == 0:
            return float("nan"), float("nan")
        return self._wilson(self._i_err[k], self._i_n[k], self._fmr_variance(k))

    def _table(self) -> pd.DataFrame:
        fnmr = _ratio(self._g_err, self._g_n)
        fmr = _ratio(self._i_err, self._i_n)
        rows = []
        for k, g in enumerate(self.groups):
            flo, fhi = self._fmr_interval(k)
            fnmr_lo, fnmr_hi = self._wilson(self._g_err[k], self._g_n[k],
                                            _replicate_variance(_ratio(self._g_err_b[:, k], self._g_n_b[:, k])))
            rows.append({"group": g, "threshold": self.threshold, "n_genuine": int(self._g_n[k]),
                         "n_impostor": int(self._i_n[k]), "false_non_matches": int(self._g_err[k]),
                         "false_matches": int(self._i_err[k]), "fnmr": float(fnmr[k]), "fnmr_lo": fnmr_lo,
                         "fnmr_hi": fnmr_hi, "fmr": float(fmr[k]), "fmr_lo": flo, "fmr_hi": fhi,
                         "n_identities": int(self._ids[:, k].sum()), "ci_level": self.ci_level,
                         "fnmr_ci_method": self._FNMR_METHOD, "fmr_ci_method": self._fmr_method})
        return pd.DataFrame(rows, columns=BY_GROUP_COLUMNS)

    def _overall(self) -> pd.DataFrame:
        g_err, g_n, i_err, i_n = self._g_err.sum(), self._g_n.sum(), self._i_err.sum(), self._i_n.sum()
        lo, hi = self._wilson(g_err, g_n, _replicate_variance(_ratio(self._g_err_b.sum(axis=1), self._g_n_b.sum(axis=1))))
        if i_n == 0:
            flo = fhi = float("nan")
        else:
            flo, fhi = self._wilson(i_err, i_n, self._fmr_variance(None))
        row = {"group": "all", "threshold": self.threshold, "n_genuine": int(g_n), "n_impostor": int(i_n),
               "false_non_matches": int(g_err), "false_matches": int(i_err),
               "fnmr": float(_ratio(g_err, g_n)), "fnmr_lo": float(lo), "fnmr_hi": float(hi),
               "fmr": float(_ratio(i_err, i_n)), "fmr_lo": float(flo), "fmr_hi": float(fhi),
               "n_identities": int(self._ids.any(axis=1).sum()), "ci_level": self.ci_level,
               "fnmr_ci_method": self._FNMR_METHOD, "fmr_ci_method": self._fmr_method}
        return pd.DataFrame([row], columns=BY_GROUP_COLUMNS)

    # ---- contrasts -------------------------------------------------------------------------
    def _reference(self, reference) -> int:
        if reference is None:
            return 0
        if reference not in self.groups:
            raise ValueError(f"reference {reference!r} is not one of the groups {self.groups}")
        return self.groups.index(reference)

    def _fmr_contrast(self, k: int, r: int):
        """``(diff, se_diff, ratio, se_log_ratio)`` as the audits' FMR contrasts (dyadic-robust)."""
        ok = np.ones(len(self._imp_hit))
        ug, eg, ng = rate_influence(self._imp_hit, ok, self._imp_group == k)
        ur, er, nr = rate_influence(self._imp_hit, ok, self._imp_group == r)
        mask = (self._imp_group == k) | (self._imp_group == r)
        diff = eg / ng - er / nr
        se_diff = np.sqrt(self._dyad.variance(ug / ng - ur / nr, mask))
        ratio = ((eg + PSEUDO_ERRORS) / (ng + PSEUDO_TRIALS)) / ((er + PSEUDO_ERRORS) / (nr + PSEUDO_TRIALS))
        se_log = np.sqrt(self._dyad.variance(ug / (eg + PSEUDO_ERRORS) - ur / (er + PSEUDO_ERRORS), mask))
        return diff, se_diff, ratio, se_log

    def _contrasts(self, reference, kind: str) -> pd.DataFrame:
        r = self._reference(reference)
        null = 0.0 if kind == "diff" else 1.0
        rows = []

        def boot_row(metric, est, reps):
            lo, hi = percentile_ci(reps, self.ci_level)
            p = resolved_pvalue(reps, est, null, log=kind == "ratio") if np.isfinite(reps).any() else float("nan")
            return {"metric": metric, "estimate": float(est), "ci_lo": float(lo), "ci_hi": float(hi), "p_value": p,
                    "ci_method": CI_METHOD.replace("seed", "identity")}

        for k, g in enumerate(self.groups):
            if k == r:
                continue
            base = {"group": g, "reference": self.groups[r], "threshold": self.threshold}
            for side, err, n, err_b, n_b in (("fnmr", self._g_err, self._g_n, self._g_err_b, self._g_n_b),
                                             ("fmr", self._i_err, self._i_n, self._i_err_b, self._i_n_b)):
                if n[k] == 0 or n[r] == 0:
                    continue
                metric = f"{side}_{kind}"
                if side == "fmr" and self.dyadic:
                    d, se_d, q, se_q = self._fmr_contrast(k, r)
                    est, se = (d, se_d) if kind == "diff" else (q, se_q)
                    lo, hi, p = normal_interval(est, se, self.ci_level, null, log=kind == "ratio")
                    row = {"metric": metric, "estimate": float(est), "ci_lo": lo, "ci_hi": hi, "p_value": p,
                           "ci_method": DYADIC_METHOD + (", log scale" if kind == "ratio" else "")}
                elif kind == "diff":
                    row = boot_row(metric, err[k] / n[k] - err[r] / n[r],
                                   _ratio(err_b[:, k], n_b[:, k]) - _ratio(err_b[:, r], n_b[:, r]))
                else:
                    row = boot_row(metric, _smoothed(err[k], n[k]) / _smoothed(err[r], n[r]),
                                   _smoothed(err_b[:, k], n_b[:, k]) / _smoothed(err_b[:, r], n_b[:, r]))
                rows.append({**base, **row, "null": null, "ci_level": self.ci_level})
        return pd.DataFrame(rows, columns=["group", "reference", "threshold", "metric", "estimate", "ci_lo", "ci_hi",
                                           "p_value", "ci_method", "null", "ci_level"])

    def difference(self, reference=None) -> pd.DataFrame:
        """Each group's FNMR and FMR minus the reference group's, with paired intervals.

        Parameters
        ----------
        reference : str, optional
            The reference group (default: the first group in sorted order).

        Returns
        -------
        pandas.DataFrame
            One row per non-reference group and metric (``fnmr_diff``, ``fmr_diff``): ``group``,
            ``reference``, ``threshold``, ``metric``, ``estimate``, ``ci_lo``, ``ci_hi``, ``p_value``
            (two-sided, ``p < 1 - ci_level`` exactly when the interval excludes 0), ``ci_method``,
            ``null``, ``ci_level``.

        Examples
        --------
        >>> from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs
        >>> pairs = simulate_score_pairs(n_identities=20, seed=2)
        >>> er = ErrorRates(pairs, group="group", cluster=("identity_a", "identity_b"), threshold=1.0, n_boot=200)
        >>> d = er.difference(reference="B")
        >>> d[["group", "reference", "metric"]].values.tolist()
        [['A', 'B', 'fnmr_diff'], ['A', 'B', 'fmr_diff']]
        >>> row = d.iloc[0]
        >>> bool(row["ci_lo"] <= row["estimate"] <= row["ci_hi"])
        True
        """
        return self._contrasts(reference, "diff")

    def ratio(self, reference=None) -> pd.DataFrame:
        """Each group's FNMR and FMR over the reference group's, on smoothed rates ``(errors + 0.5) / (trials + 1)``
        (finite when a group has no error; the audits' ratio contrasts).

        Parameters
        ----------
        reference : str, optional
            The reference group (default: the first group in sorted order).

        Returns
        -------
        pandas.DataFrame
            As :meth:`difference`, metrics ``fnmr_ratio`` and ``fmr_ratio`` (null 1).

        Examples
        --------
        >>> from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs
        >>> pairs = simulate_score_pairs(n_identities=20, shift={"B": -1.0}, seed=3)
        >>> er = ErrorRates(pairs, group="group", cluster=("identity_a", "identity_b"), threshold=1.0, n_boot=200)
        >>> r = er.ratio().set_index("metric")
        >>> bool(r.loc["fnmr_ratio", "estimate"] > 1 and r.loc["fnmr_ratio", "null"] == 1.0)
        True
        """
        return self._contrasts(reference, "ratio")

    # ---- summaries across groups -----------------------------------------------------------
    def max_geomean(self) -> pd.DataFrame:
        """NIST FRTE Part 8 style summaries across groups: max / geometric mean and max / min of FMR and FNMR.

        Rates are smoothed, ``(errors + 0.5) / (trials + 1)`` (the ``smoothing`` column), so a group with
        no error gives a finite summary; ``estimate_raw`` is the same summary of the raw rates (``inf``
        or NaN when a group has none). Intervals: percentile, from the identity-clustered bootstrap
        replicates of every group's rate (impostor pairs with both identities' multiplicity), so the
        worst group may change between replicates. Like any max over noisy rates these summaries are
        biased upward when groups are small: read them with the paired contrasts.

        Returns
        -------
        pandas.DataFrame
            Rows ``fmr_max_geomean``, ``fnmr_max_geomean``, ``fmr_max_min``, ``fnmr_max_min``; columns
            ``metric``, ``estimate``, ``ci_lo``, ``ci_hi``, ``estimate_raw``, ``worst_group``,
            ``best_group``, ``n_groups``, ``threshold``, ``smoothing``, ``ci_level``, ``ci_method``.

        Examples
        --------
        >>> from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs
        >>> pairs = simulate_score_pairs(n_identities=20, shift={"B": -1.0}, seed=4)
        >>> er = ErrorRates(pairs, group="group", cluster=("identity_a", "identity_b"), threshold=1.0, n_boot=200)
        >>> m = er.max_geomean().set_index("metric")
        >>> m.loc["fnmr_max_geomean", "worst_group"], m.loc["fnmr_max_geomean", "smoothing"]
        ('B', '(errors + 0.5) / (trials + 1)')
        >>> bool(m.loc["fnmr_max_min", "estimate"] >= m.loc["fnmr_max_geomean", "estimate"] >= 1)
        True
        """
        rows = []
        for side, err, n, err_b, n_b in (("fmr", self._i_err, self._i_n, self._i_err_b, self._i_n_b),
                                         ("fnmr", self._g_err, self._g_n, self._g_err_b, self._g_n_b)):
            keep = n > 0
            names = [g for g, k in zip(self.groups, keep) if k]
            s, sb = _smoothed(err[keep], n[keep]), _smoothed(err_b[:, keep], n_b[:, keep])
            raw = _ratio(err[keep], n[keep])
            for summary in ("max_geomean", "max_min"):
                if summary == "max_geomean":
                    f = max_geomean  # the audit's fairness.parquet uses the same function
                else:
                    def f(x):
                        with np.errstate(divide="ignore", invalid="ignore"):
                            return x.max(axis=-1) / x.min(axis=-1)
                if len(names) == 0:
                    continue
                lo, hi = percentile_ci(f(sb), self.ci_level)
                rows.append({"metric": f"{side}_{summary}", "estimate": float(f(s)), "ci_lo": float(lo),
                             "ci_hi": float(hi), "estimate_raw": float(f(raw)),
                             "worst_group": names[int(np.argmax(s))], "best_group": names[int(np.argmin(s))],
                             "n_groups": len(names), "threshold": self.threshold, "smoothing": SMOOTHING,
                             "ci_level": self.ci_level,
                             "ci_method": CI_METHOD.replace("seed", "identity") + (
                                 " (impostor pairs: both identities' multiplicity)" if side == "fmr" and self.dyadic
                                 else "")})
        order = ["fmr_max_geomean", "fnmr_max_geomean", "fmr_max_min", "fnmr_max_min"]
        out = pd.DataFrame(rows)
        return out.set_index("metric").loc[[m for m in order if m in set(out["metric"])]].reset_index()

    # ---- figure ----------------------------------------------------------------------------
    def plot(self):
        """FNMR and FMR per group with their intervals as error bars (a plotly figure, two panels).

        Returns
        -------
        plotly.graph_objects.Figure

        Examples
        --------
        >>> from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs
        >>> er = ErrorRates(simulate_score_pairs(n_identities=10, seed=5), group="group",
        ...                 cluster=("identity_a", "identity_b"), threshold=1.0, n_boot=100)
        >>> fig = er.plot()
        >>> [trace.name for trace in fig.data]
        ['FNMR', 'FMR']
        """
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        bg = self.by_group
        names = [str(g) for g in bg["group"]]
        fig = make_subplots(rows=1, cols=2, subplot_titles=("FNMR", "FMR"))
        for col, (rate, label) in enumerate((("fnmr", "FNMR"), ("fmr", "FMR")), start=1):
            est = bg[rate].to_numpy(dtype=float)
            fig.add_trace(go.Scatter(
                x=names, y=est, mode="markers", name=label,
                error_y={"type": "data", "symmetric": False, "array": bg[f"{rate}_hi"].to_numpy(dtype=float) - est,
                         "arrayminus": est - bg[f"{rate}_lo"].to_numpy(dtype=float)}), row=1, col=col)
        where = f"FMR {self.target_fmr:g} on all impostors" if self.target_fmr is not None else "fixed"
        fig.update_layout(title=f"Error rates per group at threshold {self.threshold:.4g} ({where}); "
                                f"{self.ci_level:.0%} intervals, identities resampled", showlegend=False)
        return fig

    def __repr__(self) -> str:
        return (f"ErrorRates({len(self.groups)} groups, {self.n_identities} identities, threshold={self.threshold:.6g}, "
                f"n_boot={self.n_boot}, ci_level={self.ci_level})")


def simulate_score_pairs(n_identities: int = 30, groups: Sequence[str] = ("A", "B"), genuine_per_identity: int = 3,
                         shift: Optional[dict] = None, impostor_shift: Optional[dict] = None,
                         seed: int = 0) -> pd.DataFrame:
    """A small score table with identity effects, for examples and tests.

    Per group, ``n_identities`` identities; each has a random effect on its genuine scores (SD 0.5)
    and on its impostor scores (SD 0.3). Genuine score ``2 + shift[group] + u_i + N(0, 1)``
    (``genuine_per_identity`` per identity); impostor pairs: every pair of identities within a group,
    score ``impostor_shift[group] + v_i + v_j + N(0, 1)``.

    Parameters
    ----------
    n_identities : int
        Identities per group.
    groups : sequence of str
        Group names.
    genuine_per_identity : int
        Genuine comparisons per identity.
    shift : dict, optional
        ``{group: shift of its genuine scores}`` (a planted effect; negative = more false non-matches).
    impostor_shift : dict, optional
        ``{group: shift of its impostor scores}`` (positive = more false matches).
    seed : int
        RNG seed.

    Returns
    -------
    pandas.DataFrame
        ``identity_a``, ``identity_b``, ``kind``, ``group``, ``score``.

    Examples
    --------
    >>> df = simulate_score_pairs(n_identities=4, groups=("A",), genuine_per_identity=2)
    >>> df["kind"].value_counts().to_dict()
    {'genuine': 8, 'impostor': 6}
    """
    rng = np.random.default_rng(seed)
    shift = shift or {}
    impostor_shift = impostor_shift or {}
    rows = []
    for g in groups:
        names = [f"{g}-{i:03d}" for i in range(n_identities)]
        u = rng.normal(0, 0.5, n_identities)
        v = rng.normal(0, 0.3, n_identities)
        for i, name in enumerate(names):
            for s in 2.0 + shift.get(g, 0.0) + u[i] + rng.normal(0, 1, genuine_per_identity):
                rows.append((name, name, "genuine", g, float(s)))
        for i in range(n_identities):
            for j in range(i + 1, n_identities):
                rows.append((names[i], names[j], "impostor", g,
                             float(impostor_shift.get(g, 0.0) + v[i] + v[j] + rng.normal(0, 1))))
    return pd.DataFrame(rows, columns=["identity_a", "identity_b", "kind", "group", "score"])
