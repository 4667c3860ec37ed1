"""The card's synthetic-versus-real section and its DET curves with bootstrap bands, read from
``results/synthetic_vs_real.parquet``, ``results/synthetic_vs_real_hist.parquet`` and
``results/det_bands.parquet`` (computed in :mod:`faceaudit.stats.real_gap` and :mod:`faceaudit.stats.det`).

Nothing here computes a statistic: each rate, count and interval is a value of those tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.report import figures as F
from faceaudit.report import fmt
from faceaudit.report.tables import Table

__all__ = ["RealGapModel", "RealSection", "real_section", "deployed_row", "gap_sentence"]

SOURCE_LABELS = {"fixed": "fixed threshold", "calibration_run": "calibrated on the real run",
                 "target_fmr": "set on the audit's impostors"}


@dataclass(frozen=True)
class RealGapModel:
    """One model's part: the sentence, the table of operating points and the figure's index."""

    name: str
    sentence: str
    table: Table
    #: position of the model's figure in ``figures["real_gap"]`` (None: no histogram table)
    figure_index: Optional[int] = None


@dataclass(frozen=True)
class RealSection:
    """What the card shows of a calibration run (``models`` empty without one) and the DET bands."""

    calibration_run: Optional[str]
    genuine_note: Optional[str]
    models: list[RealGapModel]
    figures: dict[str, list[F.Figure]] = field(default_factory=dict)
    det_bands_note: Optional[str] = None


def _point_label(r) -> str:
    if r["threshold_source"] == "fixed":
        return "fixed threshold"
    where = "real impostors" if r["threshold_source"] == "calibration_run" else "the audit's impostors"
    return f"FMR {fmt.pct(r['target_fmr'])} on {where}"


def _short_label(r) -> str:
    """The figure's label of a threshold line: ``fixed``, ``real 1.00%``, ``synthetic 1.00%``."""
    if r["threshold_source"] == "fixed":
        return "fixed"
    return f"{'real' if r['threshold_source'] == 'calibration_run' else 'synthetic'} FMR {fmt.pct(r['target_fmr'])}"


def deployed_row(rows: pd.DataFrame, primary_target: float) -> Optional[pd.Series]:
    """The operating point the sentence speaks of: the fixed threshold when the protocol sets one, else
    the threshold calibrated on the real run at the primary target FMR (else at its first target).

    Parameters
    ----------
    rows : pandas.DataFrame
        One model's ``synthetic_vs_real`` rows with ``data == "synthetic"``.
    primary_target : float
        The protocol's primary target FMR.

    Returns
    -------
    pandas.Series or None

    Examples
    --------
    >>> d = pd.DataFrame({"threshold_source": ["target_fmr", "calibration_run", "calibration_run"],
    ...                   "target_fmr": [1e-3, 1e-2, 1e-3], "threshold": [0.5, 0.3, 0.4]})
    >>> float(deployed_row(d, 1e-3)["threshold"])
    0.4
    """
    for source in ("fixed", "calibration_run"):
        d = rows[rows["threshold_source"] == source]
        if len(d):
            at = d[np.isclose(d["target_fmr"].fillna(-1.0).astype(float), primary_target)]
            return (at if len(at) else d).iloc[0]
    return None


def gap_sentence(model: str, synthetic: pd.Series, real: pd.Series) -> str:
    """One sentence: the FMR (and FNMR, where the real run has genuine pairs) of both at one threshold.

    Parameters
    ----------
    model : str
        Model name.
    synthetic, real : pandas.Series
        The ``synthetic_vs_real`` rows of the two data sets at the same threshold.

    Returns
    -------
    str

    Examples
    --------
    >>> s = pd.Series({"threshold_source": "fixed", "target_fmr": np.nan, "threshold": 0.363, "fmr": 0.012,
    ...                "false_matches": 12, "n_impostor": 1000, "fnmr": 0.2, "false_non_matches": 20, "n_genuine": 100})
    >>> r = s.copy(); r["fmr"], r["false_matches"], r["n_impostor"], r["n_genuine"] = 0.001, 1, 1000, 0
    >>> print(gap_sentence("sface", s, r))  # doctest: +NORMALIZE_WHITESPACE
    At the deployed threshold (fixed threshold, 0.3630) sface falsely matches 1.20% of synthetic impostors
    (12/1,000) and 0.100% of real ones (1/1,000); it falsely rejects 20.0% of synthetic genuine pairs
    (20/100), and FNMR on real photographs needs identity-labelled photos (the calibration run has no genuine pair).
    """
    where = _point_label(synthetic)
    text = (f"At the deployed threshold ({where}, {fmt.num(float(synthetic['threshold']), 4)}) {model} falsely matches "
            f"{fmt.pct(synthetic['fmr'])} of synthetic impostors ({fmt.count(synthetic['false_matches'], synthetic['n_impostor'])}) "
            f"and {fmt.pct(real['fmr'])} of real ones ({fmt.count(real['false_matches'], real['n_impostor'])}); ")
    syn_fnmr = (f"{fmt.pct(synthetic['fnmr'])} of synthetic genuine pairs "
                f"({fmt.count(synthetic['false_non_matches'], synthetic['n_genuine'])})")
    if int(real["n_genuine"]) > 0:
        return text + (f"it falsely rejects {syn_fnmr} and {fmt.pct(real['fnmr'])} of real ones "
                       f"({fmt.count(real['false_non_matches'], real['n_genuine'])}).")
    return text + (f"it falsely rejects {syn_fnmr}, and FNMR on real photographs needs identity-labelled photos "
                   "(the calibration run has no genuine pair).")


def _rate(r, col: str, events: str, trials: str) -> str:
    if int(r[trials]) == 0:
        return "–"
    return f"{fmt.with_ci(r[col], r[f'{col}_lo'], r[f'{col}_hi'])} ({fmt.count(r[events], r[trials])})"


def _table(rows: pd.DataFrame, level: float) -> Table:
    ci = f"{level:.0%} CI"
    out = []
    order = {"fixed": 0, "calibration_run": 1, "target_fmr": 2}
    rows = rows.assign(_s=rows["threshold_source"].map(order)).sort_values(["_s", "target_fmr"], kind="stable")
    for (_, _, _), d in rows.groupby(["_s", rows["target_fmr"].fillna(-1.0), "threshold"], sort=False):
        syn = d[d["data"] == "synthetic"].iloc[0]
        real = d[d["data"] == "real"].iloc[0]
        out.append([_point_label(syn), fmt.num(float(syn["threshold"]), 4),
                    _rate(syn, "fmr", "false_matches", "n_impostor"), _rate(real, "fmr", "false_matches", "n_impostor"),
                    _rate(syn, "fnmr", "false_non_matches", "n_genuine"),
                    _rate(real, "fnmr", "false_non_matches", "n_genuine")])
    cols = ["operating point", "threshold", f"FMR synthetic [{ci}] (false matches / impostor pairs)", "FMR real",
            f"FNMR synthetic [{ci}] (false non-matches / genuine pairs)", "FNMR real"]
    return Table(cols, out, [False, True, True, True, True, True])


def real_section(run, facts) -> RealSection:
    """The synthetic-versus-real blocks (with a calibration run) and the DET-band figures of a run.

    Parameters
    ----------
    run : Run
        The run (:func:`faceaudit.run.load_run`).
    facts : RunFacts
        The card's facts (:func:`faceaudit.report.card.run_facts`).

    Returns
    -------
    RealSection
        ``figures`` has the kinds ``det_bands`` (one per model) and ``real_gap`` (one per entry of ``models``).
    """
    level = facts.protocol.analysis.ci_level
    figures: dict[str, list[F.Figure]] = {"det_bands": [], "real_gap": []}
    bands = run.result("det_bands")
    note = None
    if bands is not None and "model" not in bands.columns:  # written empty: no model enrolled a comparison
        bands = bands.assign(model=pd.Series(dtype=str))
    if bands is None:
        note = "Not computed: `results/det_bands.parquet` is absent from this run (run `faceaudit analyze` again)."
    else:
        # an impostor_sample run writes the table with no rows (and no columns): no model has bands
        for m in (facts.models if "model" in bands.columns else []):
            f = F.det_band_figure(m, bands[bands["model"] == m], facts.groups, facts.primary_target, level)
            if f is not None:
                figures["det_bands"].append(f)
        if not figures["det_bands"]:
            note = ("No DET band was computed (no model had enrolled impostor comparisons, or more than "
                    "stats.det.DET_MAX_PAIRS of them in an impostor_sample run).")
    cal = facts.protocol.analysis.calibration_run
    table, hist = run.result("synthetic_vs_real"), run.result("synthetic_vs_real_hist")
    models: list[RealGapModel] = []
    genuine_note = None
    if cal is not None and table is not None and len(table) and "model" in table.columns:
        name = Path(cal).name
        for m in facts.models:
            rows = table[table["model"] == m]
            if rows.empty:
                continue
            syn = rows[rows["data"] == "synthetic"]
            dep = deployed_row(syn, facts.primary_target)
            if dep is None:
                continue
            same = rows[(rows["threshold_source"] == dep["threshold_source"]) & (rows["threshold"] == dep["threshold"])]
            real = same[same["data"] == "real"].iloc[0]
            points = syn.drop_duplicates("threshold")
            thresholds = [(_short_label(r), float(r["threshold"])) for _, r in points.iterrows()
                          if r["threshold_source"] != "target_fmr" or np.isclose(r["target_fmr"], facts.primary_target)]
            h = hist[hist["model"] == m] if hist is not None and len(hist) else None
            f = F.synthetic_vs_real_figure(m, h, thresholds, name) if h is not None and len(h) else None
            if f is not None:
                figures["real_gap"].append(f)
            models.append(RealGapModel(m, gap_sentence(m, dep, real), _table(rows, level),
                                       len(figures["real_gap"]) - 1 if f is not None else None))
        if models and (table.loc[table["data"] == "real", "n_genuine"] == 0).all():
            genuine_note = ("The calibration run has no genuine pair (no identity has two photos), so it measures FMR only: "
                            "FNMR on real photographs needs identity-labelled photos (several per person).")
    return RealSection(calibration_run=cal, genuine_note=genuine_note, models=models, figures=figures,
                       det_bands_note=note)
