"""The card's gender caveats (section 9): how the gender cells were placed and validated, the age
confound with the age-adjusted contrast, and the impostor-similarity shift between gender cells.

Everything is read from the results tables the analysis wrote (``results/gender_placement.parquet``,
``results/gender_age.parquet``, ``results/impostor_shift.parquet``; :mod:`faceaudit.stats.gender`);
nothing is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Optional

import pandas as pd

from faceaudit.report import fmt
from faceaudit.report.tables import Table

__all__ = ["GenderSection", "gender_section", "GENDER_TABLES"]

#: results tables this section reads (the card does not list them again as "other results")
GENDER_TABLES = ("gender_age", "impostor_shift", "gender_placement")

_METRIC_NAMES = {"fnmr_diff": "FNMR", "fmr_diff": "FMR", "genuine_score_diff": "mean genuine score"}


@dataclass(frozen=True)
class GenderSection:
    """Section 9's gender bullets and their two tables."""

    placement: str
    age: str
    age_table: Optional[Table]
    shift: str
    shift_table: Optional[Table]
    notes: list[str] = field(default_factory=list)


def _fmt_metric(metric: str):
    return fmt.metric_formatter(metric)


def _placement_text(run, models: list[str]) -> str:
    t = run.result("gender_placement")
    if t is None or not len(t):
        return ("Gender cells are placed on a classifier's P(male); this run's results hold no placement check "
                "(results/gender_placement.parquet), so how far a second classifier agrees is not shown.")
    r0 = t.iloc[0]
    placed, valid = escape(str(r0["placed_by"])), escape(str(r0["validated_by"]))
    parts = []
    for _, r in t.iterrows():
        if pd.notna(r["agree_share"]):
            parts.append(f"{fmt.pct(r['agree_share'])} of the “{escape(str(r['level']))}” prototypes "
                         f"({fmt.count(r['n_agree'], r['n_prototypes'])})")
    agree = (f"The validating classifier {valid} puts " + " and ".join(parts) + " in the same bin"
             if parts else f"No P(male) of the validating classifier {valid} was measured, so the placement is unchecked")
    text = (f"Gender cells are placed by the {placed} classifier's P(male) (column <code>{escape(str(r0['placement_measure']))}</code>). "
            f"{agree}.")
    audited = {m.split(":")[0].lower() for m in models}
    if placed.lower() in audited:
        text += (f" The placing classifier {placed} shares its network with the audited model {placed}: its gender "
                 "contrast is circular (the cells were chosen by what it sees) and should not be read as a finding.")
    elif valid.lower() in audited:
        text += f" The validating classifier {valid} is itself audited in this run, so the check is not independent of it."
    else:
        text += f" Neither {placed} nor {valid} is an audited model of this run."
    return text


def _age_parts(run) -> tuple[str, Optional[Table]]:
    t = run.result("gender_age")
    if t is None or not len(t):
        return ("The apparent age of the gender cells was not compared in this run (results/gender_age.parquet).", None)
    main = t[t["age_measure"] == "measured_age"]
    if not len(main):
        main = t[t["age_measure"] == t["age_measure"].iloc[0]]
    gaps = []
    for measure, d in t.groupby("age_measure", sort=False):
        gaps.append(f"{fmt.signed(float(d['mean_age_diff'].iloc[0]), 2)} years of apparent age by the "
                    f"{d['age_classifier'].iloc[0]}")
    lv, ref = str(main["level"].iloc[0]), str(main["reference"].iloc[0])
    classifier = str(main["age_classifier"].iloc[0])
    rows = []
    verdicts = []
    for (model, metric), d in main.groupby(["model", "metric"], sort=False):
        raw = d[~d["adjusted"].astype(bool)]
        adj = d[d["adjusted"].astype(bool)]
        if not len(raw) or not len(adj):
            continue
        raw, adj = raw.iloc[0], adj.iloc[0]
        f = _fmt_metric(str(metric))
        slope = adj["age_slope"]
        rows.append([str(model), _METRIC_NAMES.get(str(metric), str(metric)),
                     f"{f(raw['estimate'])} {fmt.ci(raw['ci_lo'], raw['ci_hi'], f)}",
                     f"{f(adj['estimate'])} {fmt.ci(adj['ci_lo'], adj['ci_hi'], f)}",
                     fmt.ci(adj["ci_lo_cluster"], adj["ci_hi_cluster"], f),
                     fmt.pvalue(adj["p_value"]),
                     fmt.signed(slope * 10, 2) if str(metric) == "genuine_score_diff" else fmt.pp(slope * 10),
                     f"{int(adj['n_units']):,} ({int(adj['n_seeds']):,} seeds)"])
        raw_sig = pd.notna(raw["ci_lo"]) and (raw["ci_lo"] > 0 or raw["ci_hi"] < 0)
        adj_sig = pd.notna(adj["ci_lo"]) and (adj["ci_lo"] > 0 or adj["ci_hi"] < 0)
        if raw_sig and not adj_sig:
            verdicts.append(f"{model} {_METRIC_NAMES.get(str(metric), metric)}")
    table = Table(["model", "metric", f"{lv} − {ref}, raw (paired)", "at equal apparent age", "cluster-robust CI",
                   "p (adjusted model)", "age slope per 10 years", "units"], rows,
                  [False, False, True, True, True, True, True, True]) if rows else None
    text = (f"Against the “{ref}” prototype of the same seed, “{lv}” prototypes measure on average "
            f"{gaps[0]}{' (' + '; '.join(gaps[1:]) + ')' if len(gaps) > 1 else ''}, so a raw "
            f"{lv}–{ref} contrast mixes presentation with apparent age. The "
            f"table regresses each seed's {lv}-minus-{ref} difference on the difference of the prototypes' measured "
            f"age ({classifier}); the intercept is the contrast at equal apparent age (seed-bootstrap CI, beside "
            "statsmodels' cluster-robust one; p-value by flipping the seeds' residuals). FMR rows treat each seed's "
            "share of false matches as its own although every impostor pair enters two seeds' shares: read their "
            "interval and p-value as approximate, and the impostor-similarity table below for the FMR.")
    if verdicts:
        text += (" Raw contrasts whose CI excludes 0 but whose age-adjusted one does not: " + ", ".join(verdicts)
                 + " — there the age difference can explain the gender difference.")
    return text, table


def _shift_parts(run) -> tuple[str, Optional[Table]]:
    t = run.result("impostor_shift")
    if t is None or not len(t):
        return ("The impostor scores of the gender cells were not compared in this run (results/impostor_shift.parquet).",
                None)
    rows = []
    higher, lower = [], []
    lv, ref = str(t["level"].iloc[0]), str(t["reference"].iloc[0])
    for (model, scope), d in t.groupby(["model", "scope"], sort=False):
        s = d[d["metric"] == "impostor_score_mean"]
        f = d[d["metric"] == "fmr"]
        if not len(s):
            continue
        s = s.iloc[0]
        row = [str(model), "all" if scope == "all" else fmt.group_label(str(scope)),
               f"{fmt.num(s['value_level'])} / {fmt.num(s['value_ref'])}",
               f"{fmt.signed(s['estimate'])} {fmt.ci(s['ci_lo'], s['ci_hi'], fmt.signed)}"]
        if len(f):
            f = f.iloc[0]
            row += [f"{fmt.rate_count(f['value_level'], f['events_level'], f['n_level'])} / "
                    f"{fmt.rate_count(f['value_ref'], f['events_ref'], f['n_ref'])}",
                    f"{fmt.pp(f['estimate'])} {fmt.ci(f['ci_lo'], f['ci_hi'], fmt.pp)}", fmt.pvalue(f["p_value"])]
        else:
            row += ["–", "–", "–"]
        rows.append(row)
        if scope == "all":
            if pd.notna(s["ci_lo"]) and s["ci_lo"] > 0:
                higher.append(str(model))
            elif pd.notna(s["ci_hi"]) and s["ci_hi"] < 0:
                lower.append(str(model))
    target = t.loc[t["metric"] == "fmr", "target_fmr"]
    at = f" at the global threshold of target FMR {fmt.pct(target.iloc[0])}" if len(target) else ""
    table = Table(["model", "cells", f"mean impostor score {lv} / {ref}", f"{lv} − {ref} (dyadic CI)",
                   f"FMR {lv} / {ref}{at}", f"FMR {lv} − {ref}", "p (FMR)"], rows,
                  [False, False, True, True, True, True, True])
    models = sorted(set(t["model"].astype(str)))
    text = ("Impostor pairs join two different identities within one cell, so their mean score says how alike the "
            "generator makes the faces of a cell. ")
    if higher:
        every = "every model" if set(higher) == set(models) else ", ".join(higher)
        text += (f"For {every} the {lv}–{lv} impostor pairs score higher than the {ref}–{ref} ones (CI above 0): the "
                 f"generator probably renders its “{lv}” faces more alike, which raises their FMR at a shared threshold "
                 "for a reason that is the synthetic faces', not the model's. Read the gender FMR contrasts with this "
                 "shift beside them.")
    elif lower:
        text += (f"For {', '.join(lower)} the {lv}–{lv} impostor pairs score lower than the {ref}–{ref} ones (CI below 0); "
                 "a lower gender FMR there can come from the faces rather than the model.")
    else:
        text += (f"No model shows an impostor-score shift between the {lv} and {ref} cells whose CI excludes 0, so the "
                 "gender FMR contrasts are not explained by the generator making one cell's faces more alike.")
    return text, table


def gender_section(run, models: list[str]) -> Optional[GenderSection]:
    """Section 9's gender part, or None when gender is not a protected attribute of the run.

    Parameters
    ----------
    run : faceaudit.run.Run
        The run (its results tables).
    models : list of str
        The audited models.

    Returns
    -------
    GenderSection or None
    """
    groups = list(getattr(run.protocol, "group_names", []) or [])
    if not any("gender=" in str(g) for g in groups):
        return None
    placement = _placement_text(run, models)
    age, age_table = _age_parts(run)
    shift, shift_table = _shift_parts(run)
    notes = ["The gender levels are <em>perceived presentation</em> as a classifier scores a synthetic face, not anyone's "
             "gender: no person is behind these faces, and a classifier's P(male) is not a gender identity."]
    return GenderSection(placement=placement, age=age, age_table=age_table, shift=shift, shift_table=shift_table,
                         notes=notes)
