"""Two runs side by side: per-group error rates and group contrasts of run B against run A, each
change with a confidence interval paired by the shared seeds.

Use: the same protocol audited with two models, or with two versions of one model (a baseline in
CI). Both runs must hold the same faces and pairs (same protocol, same seeds); each model keeps its
own threshold at each target FMR (each is judged at its own operating point, as in its own run).

Pairing: one seed-bootstrap weight matrix ``W`` (drawn as in the analysis, from run A's protocol
seed) weights *both* runs, so a replicate that draws seed ``s`` twice counts it twice in both, and the
replicate of a change is the change of the replicates (:mod:`faceaudit.stats.bootstrap`). FNMR and
FTE changes use those replicates (percentile CI). FMR changes use the dyadic-robust variance of
the paired change (:mod:`faceaudit.stats.dyadic`), for the reason the contrasts do: the two runs'
impostor pairs are the same seed pairs, so seed effects cancel in the change and the vertex
bootstrap would over-count pair-level noise.

p-values: the contrasts' method (:data:`faceaudit.stats.primary.PVALUE_METHOD`), with the two runs in
the place of level and reference (:data:`COMPARE_PVALUE_METHOD`, column ``p_method``). Under "no
change", a seed's results in run A and run B are exchangeable, so FNMR and FTE changes (and changes
of an FNMR contrast) are tested by swapping each seed's A and B results (exact up to
:data:`~faceaudit.stats.primary.EXACT_MAX_UNITS` informative seeds, else the run's 9999 random
flips); FMR changes by the sign test of the discordant impostor comparisons (false match in one run
only), counts divided by the dyadic design effect. A ratio change shares the p-value of the
matching difference change (same null). ``significant`` stays "the CI excludes no change".

Metrics (``change`` = B minus A, or B over A for ratios):

- ``fnmr``, ``fmr``, ``fte_rate``: per group and ``all``, B - A;
- ``fnmr_diff``, ``fmr_diff``: each level's difference to the reference group, B's minus A's;
- ``fnmr_ratio``, ``fmr_ratio``: each level's ratio to the reference group (smoothed rates, as in
  the contrasts), B's over A's (null 1).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.run import Run, load_run
from faceaudit.stats.bootstrap import CI_METHOD, bootstrap_rng, percentile_ci, seed_weights
from faceaudit.stats.data import ALL, make_layout, prepare_model
from faceaudit.stats.dyadic import DYADIC_METHOD, normal_interval, rate_influence
from faceaudit.stats.error_rates import PSEUDO_ERRORS, ModelRates, Ratio, compute_model_rates, fmr_key
from faceaudit.stats.primary import (EXACT_MAX_UNITS, discordant_design_effect, discordant_pvalue, flip_matrix)

__all__ = ["COMPARE_COLUMNS", "COMPARE_PVALUE_METHOD", "compare_runs", "_compare_model_rates", "match_models",
           "comparison_summary", "run_flip_pvalue"]

COMPARE_COLUMNS = ["model_a", "model_b", "target_fmr", "metric", "group", "reference", "value_a", "value_b",
                   "change", "change_kind", "ci_lo", "ci_hi", "p_value", "significant", "ci_level", "ci_method",
                   "p_method"]

#: p-values of every comparison row
COMPARE_PVALUE_METHOD = ("paired sign-flip randomization test: each seed's run-A and run-B results swapped for FNMR "
                         "and FTE (exact below 13 informative seeds, else 9999 random flips); sign test of the "
                         "discordant impostor comparisons for FMR (exact binomial; counts divided by the dyadic "
                         "design effect of seed pairs sharing a seed, >= 1)")

RATE_METRICS = ("fnmr", "fmr", "fte_rate")
CONTRAST_METRICS = ("fnmr_diff", "fmr_diff", "fnmr_ratio", "fmr_ratio")


@dataclass
class _Run:
    root: Path
    protocol: object
    faces: pd.DataFrame
    pairs: pd.DataFrame
    models: list[str]
    run: Run


def _open(root: str | Path) -> _Run:
    run = load_run(root)
    models = run.models
    if not models:
        raise BadInput(f"{run.root}: no scored models; run the audit first")
    pairs = run.pairs.sort_values("pair_id", kind="stable").reset_index(drop=True)
    return _Run(Path(root), run.protocol, run.faces, pairs, models, run)


def _check_same_design(a: _Run, b: _Run) -> None:
    why = f"compare needs two runs of one protocol (same faces and pairs): {a.root} and {b.root}"
    cols = ["face_id", "seed", "group", "edit_attr", "edit_level"]
    fa = a.faces[cols].sort_values("face_id").reset_index(drop=True)
    fb = b.faces[cols].sort_values("face_id").reset_index(drop=True)
    if not fa.equals(fb):
        raise BadInput(f"{why}; their faces differ")
    pcols = ["pair_id", "face_a", "face_b", "kind", "seed_a", "seed_b", "group"]
    if not a.pairs[pcols].equals(b.pairs[pcols]):
        raise BadInput(f"{why}; their pairs differ")
    if a.protocol.group_names != b.protocol.group_names or a.protocol.reference_group != b.protocol.reference_group:
        raise BadInput(f"{why}; their protected groups differ")


def match_models(a_models: list[str], b_models: list[str], model_a: Optional[str] = None,
                 model_b: Optional[str] = None) -> list[tuple[str, str]]:
    """Model pairs to compare: the given ones, else those with the same name in both runs, else
    the only model of each run.

    Parameters
    ----------
    a_models, b_models : list of str
        The models of run A and run B.
    model_a, model_b : str, optional
        The models to compare (``--model-a``/``--model-b``).

    Returns
    -------
    list of (str, str)

    Examples
    --------
    >>> match_models(["dlib", "sface"], ["sface"])
    [('sface', 'sface')]
    >>> match_models(["sface"], ["sface+noise"])
    [('sface', 'sface+noise')]
    """
    if model_a or model_b:
        ma = model_a or (a_models[0] if len(a_models) == 1 else None)
        mb = model_b or (b_models[0] if len(b_models) == 1 else None)
        if ma not in a_models or mb not in b_models:
            raise BadInput(f"compare: models {ma!r} / {mb!r} not in the runs (A has {a_models}, B has {b_models})")
        return [(ma, mb)]
    common = [m for m in a_models if m in b_models]
    if common:
        return [(m, m) for m in common]
    if len(a_models) == 1 and len(b_models) == 1:
        return [(a_models[0], b_models[0])]
    raise BadInput(f"compare: no model in both runs (A has {a_models}, B has {b_models}); name them with --model-a/--model-b")


def _row(ma, mb, t, metric, group, ref, va, vb, change, kind, lo, hi, p, level, method) -> dict:
    null = 1.0 if kind == "ratio" else 0.0
    sig = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > null or hi < null))
    return {"model_a": ma, "model_b": mb, "target_fmr": t, "metric": metric, "group": group, "reference": ref,
            "value_a": float(va), "value_b": float(vb), "change": float(change), "change_kind": kind,
            "ci_lo": float(lo), "ci_hi": float(hi), "p_value": float(p), "significant": sig,
            "ci_level": level, "ci_method": method, "p_method": COMPARE_PVALUE_METHOD}


def _boot_ci(reps: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = percentile_ci(reps, level)
    return float(lo), float(hi)


def run_flip_pvalue(a_parts, b_parts, coefs, flips: Optional[np.ndarray] = None) -> float:
    """Two-sided p-value of a change between two runs by swapping each seed's run-A and run-B results.

    The statistic is ``sum_k coef_k * (rate_B(k) - rate_A(k))`` over pooled rates ``rate(k) =
    sum(num_k) / sum(den_k)`` (one ``k`` for a group's rate, two for a contrast against the reference
    group); swapping seed ``s`` moves its counts of every ``k`` between the runs at once. Exact over
    every swap of the seeds whose A and B counts differ, up to
    :data:`~faceaudit.stats.primary.EXACT_MAX_UNITS` of them; else Monte Carlo over ``flips``
    (``(1 + hits) / (1 + n_flips)``).

    Parameters
    ----------
    a_parts, b_parts : list of (numpy.ndarray, numpy.ndarray)
        Per ``k``: per-seed ``(num, den)`` of run A and of run B.
    coefs : list of float
        Per ``k``: its coefficient.
    flips : numpy.ndarray, optional
        ``(n_flips, n_seeds)`` 0/1 (:func:`faceaudit.stats.primary.flip_matrix`); default from seed 0.

    Returns
    -------
    float
        NaN when a pooled denominator is 0.

    Examples
    --------
    >>> a = [(np.array([0.0, 0.0, 0.0]), np.full(3, 10.0))]
    >>> b = [(np.array([1.0, 1.0, 0.0]), np.full(3, 10.0))]
    >>> run_flip_pvalue(a, b, [1.0])  # 2 seeds differ: 4 swaps, 2 as extreme
    0.5
    >>> run_flip_pvalue(a, a, [1.0])
    1.0
    """
    na = [np.asarray(n, float) for n, _ in a_parts]
    da = [np.asarray(d, float) for _, d in a_parts]
    nb = [np.asarray(n, float) for n, _ in b_parts]
    db = [np.asarray(d, float) for _, d in b_parts]

    def stat(E):
        total = 0.0
        for k, c in enumerate(coefs):
            dn, dd = na[k] - nb[k], da[k] - db[k]  # what a swap moves into run B
            num_b, den_b = nb[k].sum() + E @ dn, db[k].sum() + E @ dd
            num_a, den_a = na[k].sum() - E @ dn, da[k].sum() - E @ dd
            with np.errstate(invalid="ignore", divide="ignore"):
                total = total + c * (num_b / den_b - num_a / den_a)
        return total

    S = len(na[0])
    obs = stat(np.zeros((1, S)))[0]
    if not np.isfinite(obs):
        return float("nan")
    differs = np.zeros(S, dtype=bool)
    for k in range(len(coefs)):
        differs |= (na[k] != nb[k]) | (da[k] != db[k])
    active = np.flatnonzero(differs)
    if len(active) == 0:
        return 1.0
    if len(active) <= EXACT_MAX_UNITS:
        E = np.zeros((2 ** len(active), S))
        E[:, active] = np.array(list(itertools.product((0.0, 1.0), repeat=len(active))))
        mc = False
    else:
        if flips is None or flips.shape[1] != S:
            flips = flip_matrix(S, np.random.default_rng(0))
        E = np.zeros_like(flips)
        E[:, active] = flips[:, active]
        mc = True
    t = stat(E)
    hits = int(np.sum(np.abs(t) >= abs(obs) * (1 - 1e-9) - 1e-15))
    return (1 + hits) / (1 + len(E)) if mc else hits / len(E)


def _per_seed(ratio: Ratio, groups: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed ``(num, den)`` of a rate pooled over ``groups`` and every edit condition."""
    return ratio.num.per_seed[:, groups].sum(axis=(1, 2)), ratio.den.per_seed[:, groups].sum(axis=(1, 2))


class _Discordant:
    """Impostor comparisons (seed pair x group x condition) falsely matching in exactly one run."""

    def __init__(self, ra: ModelRates, rb: ModelRates, target: float):
        L = ra.md.layout
        self.S = L.S

        def keys(mr):
            lo, hi, group, cond = mr.false_match_pairs(target)
            return ((lo * L.S + hi) * L.C + cond) * L.G + group

        ka, kb = np.unique(keys(ra)), np.unique(keys(rb))
        self.only_a, self.only_b = np.setdiff1d(ka, kb), np.setdiff1d(kb, ka)
        self.G, self.C = L.G, L.C

    def _split(self, k):
        group = k % self.G
        pair = k // self.G // self.C
        return group, pair // self.S, pair % self.S

    def pvalue(self, plus: list[tuple[str, list[int]]], minus: list[tuple[str, list[int]]]) -> float:
        """Sign test: comparisons counted +1 (``plus``: (run, groups)) against -1 (``minus``)."""
        sign, lo, hi = [], [], []
        for side, parts in ((1.0, plus), (-1.0, minus)):
            for run, groups in parts:
                k = self.only_b if run == "b" else self.only_a
                g, a, b = self._split(k)
                m = np.isin(g, groups)
                sign.append(np.full(int(m.sum()), side))
                lo.append(a[m])
                hi.append(b[m])
        sign, lo, hi = np.concatenate(sign), np.concatenate(lo), np.concatenate(hi)
        deff = discordant_design_effect(sign, lo, hi, self.S)
        return discordant_pvalue(int((sign > 0).sum()), int((sign < 0).sum()), deff)


def _fmr_parts(mr: ModelRates, target: float, g: int):
    """Centred false-match contributions of group ``g`` (all edit conditions), its error count and trials."""
    imp = mr.md.impostor
    mask = (imp.group == g) if g < mr.md.layout.G else np.ones(len(imp), dtype=bool)
    return rate_influence(mr.false_match(target), imp.ok.astype(float), mask)


def _compare_model_rates(ra: ModelRates, rb: ModelRates, level: float, reference: str,
                         flips: Optional[np.ndarray] = None) -> list[dict]:
    L = ra.md.layout
    groups = L.groups + [ALL]
    C = L.C  # the pooled-condition margin
    ma, mb = ra.md.model, rb.md.model
    if not np.array_equal(ra.md.impostor.pair_id, rb.md.impostor.pair_id):
        raise BadInput("compare: the runs' impostor pairs are not the same pairs")
    if flips is None:
        flips = flip_matrix(L.S, np.random.default_rng(0))
    ok_any = ra.md.impostor.ok | rb.md.impostor.ok
    imp_group = ra.md.impostor.group

    def in_groups(*gs: int) -> np.ndarray:
        # the impostor pairs a change is a sum over (for the seed count of the small-sample factor)
        if L.G in gs:
            return ok_any
        return ok_any & np.isin(imp_group, gs)

    def members(gi: int) -> list[int]:
        return list(range(L.G)) if gi == L.G else [gi]

    def dyadic_se(psi, mask) -> float:
        return math.sqrt(ra.dyad.variance(psi, mask)) if np.any(psi[mask] != 0) else 0.0

    def flip_p(rate_a: Ratio, rate_b: Ratio, terms: list[tuple[int, float]]) -> float:
        a = [_per_seed(rate_a, members(g)) for g, _ in terms]
        b = [_per_seed(rate_b, members(g)) for g, _ in terms]
        return run_flip_pvalue(a, b, [c for _, c in terms], flips)

    rows: list[dict] = []
    boot_method, dy_method = f"paired {CI_METHOD}", f"paired {DYADIC_METHOD}"
    ref_g = groups.index(reference)

    fa, fb = ra.fte.rate(), rb.fte.rate()
    fra, frb = ra.fte.rate_boot(), rb.fte.rate_boot()
    for t in ra.thresholds:
        na, nb = ra.fnmr[t].rate(), rb.fnmr[t].rate()
        nra, nrb = ra.fnmr[t].rate_boot(), rb.fnmr[t].rate_boot()
        sa, sb = ra.fnmr[t].smoothed(), rb.fnmr[t].smoothed()
        sra, srb = ra.fnmr[t].smoothed_boot(), rb.fnmr[t].smoothed_boot()
        parts_a = [_fmr_parts(ra, t, g) for g in range(L.G + 1)]
        parts_b = [_fmr_parts(rb, t, g) for g in range(L.G + 1)]
        disc = _Discordant(ra, rb, t)
        for gi, g in enumerate(groups):
            # per-group rates
            ch = nb[gi, C] - na[gi, C]
            lo, hi = _boot_ci(nrb[:, gi, C] - nra[:, gi, C], level)
            p = flip_p(ra.fnmr[t], rb.fnmr[t], [(gi, 1.0)])
            rows.append(_row(ma, mb, t, "fnmr", g, "", na[gi, C], nb[gi, C], ch, "difference", lo, hi, p, level, boot_method))
            (ua, ea, n_a), (ub, eb, n_b) = parts_a[gi], parts_b[gi]
            va, vb = (ea / n_a if n_a else math.nan), (eb / n_b if n_b else math.nan)
            psi = (ub / n_b if n_b else 0.0) - (ua / n_a if n_a else 0.0)
            se = dyadic_se(psi, in_groups(gi))
            lo, hi, _ = normal_interval(vb - va, se, level, 0.0)
            p = disc.pvalue([("b", members(gi))], [("a", members(gi))])
            rows.append(_row(ma, mb, t, "fmr", g, "", va, vb, vb - va, "difference", lo, hi, p, level, dy_method))
            ch = fb[gi, C] - fa[gi, C]
            lo, hi = _boot_ci(frb[:, gi, C] - fra[:, gi, C], level)
            p = flip_p(ra.fte, rb.fte, [(gi, 1.0)])
            rows.append(_row(ma, mb, t, "fte_rate", g, "", fa[gi, C], fb[gi, C], ch, "difference", lo, hi, p, level, boot_method))
            if gi == ref_g or g == ALL:
                continue
            ref = groups[ref_g]
            # contrasts against the reference group: B's contrast against A's
            da, db = na[gi, C] - na[ref_g, C], nb[gi, C] - nb[ref_g, C]
            reps = (nrb[:, gi, C] - nrb[:, ref_g, C]) - (nra[:, gi, C] - nra[:, ref_g, C])
            lo, hi = _boot_ci(reps, level)
            p_fnmr = flip_p(ra.fnmr[t], rb.fnmr[t], [(gi, 1.0), (ref_g, -1.0)])
            rows.append(_row(ma, mb, t, "fnmr_diff", g, ref, da, db, db - da, "difference", lo, hi, p_fnmr, level, boot_method))
            qa, qb = sa[gi, C] / sa[ref_g, C], sb[gi, C] / sb[ref_g, C]
            reps = (srb[:, gi, C] / srb[:, ref_g, C]) / (sra[:, gi, C] / sra[:, ref_g, C])
            lo, hi = _boot_ci(reps, level)
            rows.append(_row(ma, mb, t, "fnmr_ratio", g, ref, qa, qb, qb / qa, "ratio", lo, hi, p_fnmr, level, boot_method))
            (uag, eag, nag), (uar, ear, nar) = parts_a[gi], parts_a[ref_g]
            (ubg, ebg, nbg), (ubr, ebr, nbr) = parts_b[gi], parts_b[ref_g]
            da, db = eag / nag - ear / nar, ebg / nbg - ebr / nbr
            psi = (ubg / nbg - ubr / nbr) - (uag / nag - uar / nar)
            se = dyadic_se(psi, in_groups(gi, ref_g))
            lo, hi, _ = normal_interval(db - da, se, level, 0.0)
            # +1: a false match gained in the group or lost in the reference; -1: the reverse
            p_fmr = disc.pvalue([("b", [gi]), ("a", [ref_g])], [("a", [gi]), ("b", [ref_g])])
            rows.append(_row(ma, mb, t, "fmr_diff", g, ref, da, db, db - da, "difference", lo, hi, p_fmr, level, dy_method))
            # ratio of smoothed rates; delta method on the log scale: d log((e+.5)/(n+1)) ~ u / (e+.5)
            sm = lambda e, n: (e + PSEUDO_ERRORS) / (n + 1.0)  # noqa: E731
            qa, qb = sm(eag, nag) / sm(ear, nar), sm(ebg, nbg) / sm(ebr, nbr)
            psi = (ubg / (ebg + PSEUDO_ERRORS) - ubr / (ebr + PSEUDO_ERRORS)) - (uag / (eag + PSEUDO_ERRORS) - uar / (ear + PSEUDO_ERRORS))
            se = dyadic_se(psi, in_groups(gi, ref_g))
            lo, hi, _ = normal_interval(qb / qa, se, level, 1.0, log=True)
            rows.append(_row(ma, mb, t, "fmr_ratio", g, ref, qa, qb, qb / qa, "ratio", lo, hi, p_fmr, level, dy_method))
    return rows


def compare_runs(run_a: str | Path, run_b: str | Path, model_a: Optional[str] = None,
                 model_b: Optional[str] = None) -> pd.DataFrame:
    """The comparison table (``COMPARE_COLUMNS``) of run B against run A (the baseline).

    Parameters
    ----------
    run_a, run_b : str or Path
        Run directories of one protocol (same faces and pairs); A is the baseline.
    model_a, model_b : str, optional
        The models to compare (default: :func:`match_models`).

    Returns
    -------
    pandas.DataFrame
        One row per (model pair, target FMR, metric, group): both values, the change (B - A, or
        B / A for ratios) with its paired CI and p-value.

    Examples
    --------
    >>> import tempfile, warnings
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, write_sim_run
    >>> spec = SimSpec(n_seeds=8, edits={"lighting": (-1.0, 1.0)}, gen_shift={"skin=dark": -0.2})
    >>> root = write_sim_run(tempfile.mkdtemp(), spec, np.random.default_rng(0), n_boot=100)
    >>> same = compare_runs(root, root)  # a run against itself: nothing changes
    >>> {kind: sorted(set(part.tolist())) for kind, part in same.groupby("change_kind")["change"]}
    {'difference': [0.0], 'ratio': [1.0]}
    """
    a, b = _open(run_a), _open(run_b)
    _check_same_design(a, b)
    proto = a.protocol
    layout = make_layout(a.faces, proto.group_names)
    level, targets = proto.analysis.ci_level, list(proto.analysis.target_fmr)
    W = seed_weights(layout.S, proto.analysis.n_boot, bootstrap_rng(proto.seed))
    # the sign-flip p-values' random flips: the analysis's own stream of the protocol seed
    flips = flip_matrix(layout.S, np.random.default_rng(np.random.SeedSequence([proto.seed, 18])))
    rows = []
    for ma, mb in match_models(a.models, b.models, model_a, model_b):
        mds = []
        for run, m in ((a, ma), (b, mb)):
            mds.append(prepare_model(m, run.pairs, run.run.score_table(m), run.run.enrolment_status(m), run.faces, layout,
                                     scores_where=f"{run.root}/scores/{m}", status_where=f"{run.root}/embeddings/{m}"))
        ra, rb = (compute_model_rates(md, W, targets) for md in mds)
        rows += _compare_model_rates(ra, rb, level, proto.reference_group, flips)
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def comparison_summary(table: pd.DataFrame) -> dict:
    """The comparison in summary.json's shape, for the gate: ``models -> run B's model -> target
    FMR key -> "<metric>_change" -> group -> {estimate, ci_lo, ci_hi, p_value}`` (plus the
    ``target_fmr``/``threshold`` keys the gate uses to recognise operating points).

    Parameters
    ----------
    table : pandas.DataFrame
        A comparison table (:func:`compare_runs`).

    Returns
    -------
    dict
        JSON-ready; non-finite numbers become ``None``.

    Examples
    --------
    >>> t = pd.DataFrame([{"model_a": "m", "model_b": "m", "target_fmr": 0.01, "metric": "fnmr", "group": "all",
    ...                    "change": 0.02, "ci_lo": -0.01, "ci_hi": 0.05, "p_value": 0.3, "ci_level": 0.95}])
    >>> comparison_summary(t)["models"]["m"]["1e-02"]["fnmr_change"]["all"]["estimate"]
    0.02
    """
    out: dict = {"schema": "faceaudit.comparison/1", "models": {}}
    if len(table):
        out["ci_level"] = float(table["ci_level"].iloc[0])
    for r in table.itertuples():
        block = out["models"].setdefault(r.model_b, {"baseline_model": r.model_a})
        key = fmr_key(r.target_fmr)
        cell = block.setdefault(key, {"target_fmr": float(r.target_fmr), "threshold": None})
        cell.setdefault(f"{r.metric}_change", {})[r.group] = {
            "estimate": _finite(r.change), "ci_lo": _finite(r.ci_lo), "ci_hi": _finite(r.ci_hi), "p_value": _finite(r.p_value),
        }
    return out


def _finite(x) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None
