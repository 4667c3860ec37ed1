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

__all__ = ["GenderSection", "gender_section", "GENDER_TABLES", "placement_roles", "validation_sentence", "local_finish_sentence",
           "sampled_impostors_note"]

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
    #: the placing and the validating classifier (:func:`placement_roles`)
    placed_by: str = "faceres"
    validated_by: str = "oarriaga"
    #: generation.json's ``gender_validation`` (within-seed agreement: ``share``, ``n``), None when absent
    agreement: Optional[dict] = None
    #: one line for results/summary.md per caveat: placement, apparent age, impostor similarity (plain text)
    brief: list[str] = field(default_factory=list)
    #: why the FMR rows and the impostor-shift table are empty in a run with sampled impostors, else None
    sampled_impostors: Optional[str] = None


def _fmt_metric(metric: str):
    return fmt.metric_formatter(metric)


def placement_roles(run, faces: Optional[pd.DataFrame] = None) -> tuple[str, str]:
    """(placing classifier, validating classifier) of the run's gender cells.

    Read from the faces table (``gender_placed_by``, ``gender_validated_by``, written by the
    generator), else from the protocol's gender spec (``protected[gender].placed_by``), else faceres
    and oarriaga (what runs made before the choice existed used).

    Parameters
    ----------
    run : faceaudit.run.Run
        The run.
    faces : pandas.DataFrame, optional
        The faces table to read (default: the run's).

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import pandas as pd
    >>> run = SimpleNamespace(faces=pd.DataFrame({"gender_placed_by": ["oarriaga"], "gender_validated_by": ["faceres"]}),
    ...                       protocol=None)
    >>> placement_roles(run)
    ('oarriaga', 'faceres')
    """
    faces = getattr(run, "faces", None) if faces is None else faces
    if faces is not None and {"gender_placed_by", "gender_validated_by"} <= set(faces.columns):
        placed, valid = faces["gender_placed_by"].dropna(), faces["gender_validated_by"].dropna()
        if len(placed) and len(valid):
            return str(placed.iloc[0]), str(valid.iloc[0])
    protocol = getattr(run, "protocol", None)
    gspec = protocol.protected_spec("gender") if protocol is not None and hasattr(protocol, "protected_spec") else None
    if gspec is not None and hasattr(gspec, "placed_by"):
        return str(gspec.placed_by), str(gspec.validated_by)
    return "faceres", "oarriaga"


def _agreement(run) -> Optional[dict]:
    v = (getattr(run, "generation", None) or {}).get("gender_validation") or {}
    if not v or v.get("share") is None or not v.get("n"):
        return None
    return v


def validation_sentence(run) -> str:
    """The measured within-seed agreement of the validating classifier (``results/generation.json``,
    ``gender_validation``) as one sentence of the card; empty when the run did not record it.

    For every kept seed and skin level: does the validating classifier's P(male) move from the
    reference level's prototype in the direction of the level's target (lower for "female" against
    "male" with the default levels)?

    Parameters
    ----------
    run : faceaudit.run.Run
        The run.

    Returns
    -------
    str
        HTML-escaped text.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> run = SimpleNamespace(generation={"gender_validation": {"placed_by": "faceres", "validated_by": "oarriaga",
    ...     "levels": {"female": {"share": 0.831, "n": 177}}, "share": 0.831, "n": 177}}, protocol=None, faces=None)
    >>> print(validation_sentence(run))
    Measured within-seed agreement of the validating classifier oarriaga: within each seed and skin level, its P(male) moves from the reference prototype towards the “female” target in 83.1% of 177 pairs (results/generation.json, gender_validation).
    """
    v = _agreement(run)
    if v is None:
        return ""
    valid = escape(str(v.get("validated_by") or placement_roles(run)[1]))
    protocol = getattr(run, "protocol", None)
    gspec = protocol.protected_spec("gender") if hasattr(protocol, "protected_spec") else None
    targets = {lv.name: lv.target for lv in gspec.levels} if gspec is not None else {}
    ref = gspec.reference if gspec is not None else None
    parts = []
    for name, d in (v.get("levels") or {}).items():
        if d.get("share") is None or not d.get("n"):
            continue
        share = f"{fmt.pct(d['share'])} of {int(d['n']):,} pairs"
        if name in targets and ref in targets:
            side = "below" if targets[name] < targets[ref] else "above"
            parts.append(f"of the “{escape(str(name))}” prototype is {side} that of the “{escape(str(ref))}” one in {share}")
        else:
            parts.append(f"moves from the reference prototype towards the “{escape(str(name))}” target in {share}")
    if not parts:
        parts = [f"moves from the reference prototype towards the level's target in {fmt.pct(v['share'])} of "
                 f"{int(v['n']):,} pairs"]
    overall = f" (overall {fmt.pct(v['share'])} of {int(v['n']):,})" if len(parts) > 1 else ""
    return (f"Measured within-seed agreement of the validating classifier {valid}: within each seed and skin level, "
            f"its P(male) {'; '.join(parts)}{overall} (results/generation.json, gender_validation).")


def local_finish_sentence(run) -> str:
    """How many prototypes the joint placement finished along their own local gradient, and the
    validating classifier's agreement with and without them (``results/generation.json``,
    ``gender_placement`` and ``gender_validation``); empty when the run had no finish.

    Parameters
    ----------
    run : faceaudit.run.Run
        The run.

    Returns
    -------
    str
        HTML-escaped text.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> run = SimpleNamespace(generation={
    ...     "gender_placement": {"local_finish": True, "local_limit": 3.0, "prototypes_local_finish": 90, "prototypes": 540},
    ...     "gender_validation": {"validated_by": "oarriaga", "local_finish": {"share": 0.9, "n": 70},
    ...                           "directions_only": {"share": 0.86, "n": 200}}})
    >>> print(local_finish_sentence(run))
    Cells the search along the directions could not place were finished along the seed's own direction (the summed unit latent gradients of faceres' and GEAR's gender logits, at most 3 latent units; the validating classifier never enters it): 90 of 540 kept prototypes. The validating classifier oarriaga agrees on 90.0% of 70 seed × skin-level pairs with such a prototype and on 86.0% of 200 without.
    """
    placement = (getattr(run, "generation", None) or {}).get("gender_placement") or {}
    if not placement.get("local_finish"):
        return ""
    text = (f"Cells the search along the directions could not place were finished along the seed's own direction "
            f"(the summed unit latent gradients of faceres' and GEAR's gender logits, at most "
            f"{placement.get('local_limit', 0):g} latent units; the validating classifier never enters it): "
            f"{int(placement.get('prototypes_local_finish', 0)):,} of {int(placement.get('prototypes', 0)):,} kept prototypes.")
    v = (getattr(run, "generation", None) or {}).get("gender_validation") or {}
    local, rest = v.get("local_finish") or {}, v.get("directions_only") or {}
    if local.get("n") and rest.get("n"):
        text += (f" The validating classifier {escape(str(v.get('validated_by', '')))} agrees on {fmt.pct(local['share'])} of "
                 f"{int(local['n']):,} seed × skin-level pairs with such a prototype and on {fmt.pct(rest['share'])} of "
                 f"{int(rest['n']):,} without.")
    return text


def sampled_impostors_note(run) -> Optional[str]:
    """Why a run with sampled impostors (``pairs.impostor_sample``) has no FMR rows in the age-adjusted
    gender table and an empty impostor-shift table; None for a run that keeps every impostor pair.

    Parameters
    ----------
    run : faceaudit.run.Run
        The run.

    Returns
    -------
    str or None

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> run = SimpleNamespace(protocol=SimpleNamespace(pairs=SimpleNamespace(impostor_sample=200)))
    >>> sampled_impostors_note(run)[:60]
    'Not computed with sampled impostors (pairs.impostor_sample: '
    >>> sampled_impostors_note(SimpleNamespace(protocol=SimpleNamespace(pairs=SimpleNamespace(impostor_sample=None)))) is None
    True
    """
    pairs = getattr(getattr(run, "protocol", None), "pairs", None)
    n = getattr(pairs, "impostor_sample", None)
    if n is None:
        return None
    return (f"Not computed with sampled impostors (pairs.impostor_sample: {int(n)}): the FMR rows of the age-adjusted "
            "gender contrast and the whole impostor-similarity table. The analysis streams every impostor pair's "
            "score in blocks and keeps none per pair, so it cannot split them by seed or by gender cell; audit "
            "without impostor_sample to get them.")


def _placement_text(run, models: list[str]) -> tuple[str, str]:
    """Section 9's placement bullet (HTML) and its summary.md line (plain text)."""
    placed_by, validated_by = placement_roles(run)
    validation = validation_sentence(run)
    t = run.result("gender_placement")
    audited = {m.split(":")[0].lower() for m in models}
    if placed_by.lower() in audited:
        independence = (f" The placing classifier {placed_by} shares its network with the audited model {placed_by}: its "
                        "gender contrast is circular (the cells were chosen by what it sees) and should not be read as a "
                        "finding.")
    elif validated_by.lower() in audited:
        independence = f" The validating classifier {validated_by} is itself audited in this run, so the check is not independent of it."
    else:
        independence = f" Neither {placed_by} nor {validated_by} is an audited model of this run."
    agreement = _agreement(run)
    brief = (f"Gender cells placed by {placed_by} P(male), validated by {validated_by}"
             + (f": within-seed agreement {fmt.pct(agreement['share'])} of {int(agreement['n']):,} seed × skin-level pairs"
                if agreement else ": within-seed agreement not recorded (results/generation.json)"))
    if t is None or not len(t):
        text = (f"Gender cells are placed by the {escape(placed_by)} classifier's P(male); this run's results hold no "
                "placement check (results/gender_placement.parquet), so how far the validating classifier "
                f"{escape(validated_by)} puts each level's prototypes in its bin is not shown.")
        return " ".join(x for x in (text, validation) if x) + escape(independence), brief + "." + independence
    measure = escape(str(t["placement_measure"].iloc[0]))
    parts, brief_parts = [], []
    for _, r in t.iterrows():
        if pd.notna(r["agree_share"]):
            parts.append(f"{fmt.pct(r['agree_share'])} of the “{escape(str(r['level']))}” prototypes "
                         f"({fmt.count(r['n_agree'], r['n_prototypes'])})")
            brief_parts.append(f"{fmt.pct(r['agree_share'])} of the {r['level']} ({fmt.count(r['n_agree'], r['n_prototypes'])})")
    valid = escape(validated_by)
    agree = (f"The validating classifier {valid} puts " + " and ".join(parts) + " in the level's P(male) bin"
             if parts else f"No P(male) of the validating classifier {valid} was measured, so the placement is unchecked")
    text = (f"Gender cells are placed by the {escape(placed_by)} classifier's P(male) (column <code>{measure}</code>). "
            f"{agree}."
            + (f" {validation}" if validation else "") + escape(independence))
    if brief_parts:
        brief += f"; {validated_by} puts " + " and ".join(brief_parts) + " prototypes in their bin"
    return text, brief + "." + independence


def _age_parts(run, sampled: Optional[str]) -> tuple[str, Optional[Table], str]:
    t = run.result("gender_age")
    if t is None or not len(t):
        return ("The apparent age of the gender cells was not compared in this run (results/gender_age.parquet).", None,
                "Apparent age of the gender cells: not compared (results/gender_age.parquet).")
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
    adjusted_brief = []
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
        if str(metric) in ("fnmr_diff", "fmr_diff"):
            adjusted_brief.append(f"{model} {_METRIC_NAMES[str(metric)]} {f(adj['estimate'])} {fmt.ci(adj['ci_lo'], adj['ci_hi'], f)} "
                                  f"(raw {f(raw['estimate'])} {fmt.ci(raw['ci_lo'], raw['ci_hi'], f)})")
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
    no_fmr = not (main["metric"].astype(str) == "fmr_diff").any()
    if sampled and no_fmr:
        text += " The table has no FMR rows: with sampled impostors they are not computed (see below)."
    brief = (f"Apparent age: {lv} prototypes measure {gaps[0]} against the {ref} prototype of the same seed; "
             f"{lv} − {ref} at equal apparent age: " + ("; ".join(adjusted_brief) if adjusted_brief else "no FNMR or FMR row")
             + ("; no FMR rows (sampled impostors)" if sampled and no_fmr else "") + ".")
    return text, table, brief


def _shift_parts(run, sampled: Optional[str]) -> tuple[str, Optional[Table], str]:
    t = run.result("impostor_shift")
    if t is None or not len(t):
        if sampled:
            return (sampled, None, sampled)  # (the template escapes this bullet)
        return ("The impostor scores of the gender cells were not compared in this run (results/impostor_shift.parquet).",
                None, "Impostor similarity of the gender cells: not compared (results/impostor_shift.parquet).")
    rows = []
    higher, lower = [], []
    shift_brief = []
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
            shift_brief.append(f"{model} {fmt.signed(s['estimate'])} {fmt.ci(s['ci_lo'], s['ci_hi'], fmt.signed)}"
                               + (f" (FMR {fmt.pp(f['estimate'])} {fmt.ci(f['ci_lo'], f['ci_hi'], fmt.pp)})"
                                  if not isinstance(f, pd.DataFrame) else ""))
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
    brief = (f"Impostor similarity: mean impostor score {lv}–{lv} minus {ref}–{ref} pairs (dyadic CI): "
             + "; ".join(shift_brief) + "."
             + (f" {', '.join(higher)}: the generator probably renders the {lv} faces more alike, which raises their "
                "FMR at a shared threshold." if higher else ""))
    return text, table, brief


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
    sampled = sampled_impostors_note(run)
    placement, placement_brief = _placement_text(run, models)
    age, age_table, age_brief = _age_parts(run, sampled)
    shift, shift_table, shift_brief = _shift_parts(run, sampled)
    notes = ["The gender levels are <em>perceived presentation</em> as a classifier scores a synthetic face, not anyone's "
             "gender: no person is behind these faces, and a classifier's P(male) is not a gender identity."]
    placed_by, validated_by = placement_roles(run)
    return GenderSection(placement=placement, age=age, age_table=age_table, shift=shift, shift_table=shift_table,
                         notes=notes, placed_by=placed_by, validated_by=validated_by, agreement=_agreement(run),
                         brief=[placement_brief, age_brief, shift_brief], sampled_impostors=sampled)
