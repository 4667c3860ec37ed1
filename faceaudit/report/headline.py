"""The card's first screen: which groups differ, by how much, how sure, at which operating point.

``headline_section(run, facts)`` reads, per model and per target FMR, the per-group rates (with their
counts) and the primary contrasts of FMR and FNMR side by side, the max/min ratios only where the
analysis marked them reportable, the size of the primary multiplicity family (``summary.json``) and
failure to enrol once per face detector. Colours come only from a gate policy's decisions
(``results/gate.json``, the output of ``faceaudit gate --json``); without one the headline is neutral.
Like the rest of the card it computes no statistic: it selects and formats rows the analysis wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from faceaudit.report import fmt
from faceaudit.report import figures as F

#: a target FMR is shown only where every group has at least this many expected false matches
MIN_EXPECTED_FALSE_MATCHES = 10
HEADLINE_METRICS = ("fmr_diff", "fnmr_diff")
#: contrasts.condition of the pooled primary estimate (over the low-leakage edits)
PRIMARY_POOL = "primary_pool"
ALL = "all"


@dataclass(frozen=True)
class ContrastPair:
    """One primary contrast at one operating point, FMR and FNMR side by side."""

    label: str
    fmr: Optional[dict]
    fnmr: Optional[dict]


@dataclass(frozen=True)
class OperatingPoint:
    """One target FMR of one model: per-group rates with counts, primary contrasts, ratios."""

    target: float
    target_text: str
    threshold: str
    #: set when no target FMR meets the 10/target rule and this one is shown anyway (the primary target)
    warning: Optional[str]
    groups: list[dict]
    contrasts: list[ContrastPair]
    ratios: list[dict]


@dataclass(frozen=True)
class ModelHeadline:
    name: str
    enrolled_nothing: bool
    points: list[OperatingPoint]
    omitted: list[str]  # why a target FMR is not shown
    n_significant: Optional[int]  # this model's primary contrasts with adjusted p < alpha
    #: the extra operating points of analysis.thresholds, one compact block per threshold_source
    extra_points: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class DetectorFte:
    """Failure to enrol of one face detector (shared by the models that use it)."""

    detector: str
    models: list[str]
    worst: str
    n_faces: str
    groups: list[tuple[str, str]]


@dataclass(frozen=True)
class Headline:
    models: list[ModelHeadline]
    ftes: list[DetectorFte]
    family: Optional[dict]  # summary.json primary_family, formatted: {"k", "size", "method", "alpha", "text"}
    family_note: str  # which contrasts the headline shows
    policy: Optional[str]  # the gate policy's name when colours come from one
    discussion: list[str]
    ci_method: str
    #: the first screen's sentence on the FNMR the audit operates at (and what interpreting it needs)
    operating_note: str = ""
    #: the gate policy's file, description, bounds and verdict (:func:`policy_note`)
    policy_note: str = ""


def _close(a: Any, b: float) -> bool:
    try:
        return bool(np.isclose(float(a), float(b)))
    except (TypeError, ValueError):
        return False


def ci_method_text(run, er: pd.DataFrame) -> str:
    """How this run's intervals were computed, as the analysis recorded it (summary.json ``ci_method``,
    else the ``ci_method`` column of error_rates); never a fixed sentence."""
    summary = run.summary or {}
    if summary.get("ci_method"):
        return str(summary["ci_method"])
    if "ci_method" in er.columns:
        methods = [str(m) for m in dict.fromkeys(er["ci_method"].dropna())]
        if methods:
            return "; ".join(methods)
    return "not recorded in this run's results"


def gate_record(run) -> Optional[dict]:
    """``results/gate.json`` as written by the gate stage (the verdict, counts, checks, the policy's
    file, description and rules), or None when the run has none or it cannot be read."""
    path = run.root / "results" / "gate.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_policy_checks(run) -> tuple[Optional[str], list[dict]]:
    """(policy name, checks) of ``results/gate.json`` when a gate result was recorded in the run; a
    gate that could not evaluate its policy (``error``) colours nothing."""
    data = gate_record(run)
    if data is None or data.get("error"):
        return None, []
    return str(data.get("policy") or "policy"), list(data.get("checks") or [])


def _rule_text(r: dict) -> str:
    op = "≤" if r.get("kind") == "max" else "≥"
    where = {"ci_upper": "whole CI", "ci_lower": "CI's near end", "estimate": "estimate"}.get(str(r.get("on")), str(r.get("on")))
    return f"{r.get('metric')} {op} {float(r.get('bound')):g} ({where})"


def policy_note(run) -> str:
    """What the card says about the gate policy of ``results/gate.json``: its file, description,
    bounds and verdict, or why it colours nothing (no policy, or one the run could not answer)."""
    data = gate_record(run)
    if data is None:
        return ""
    name = str(data.get("policy") or "policy")
    where = f" ({Path(str(data['policy_file'])).name})" if data.get("policy_file") else ""
    if data.get("error"):
        return f"The gate policy {name}{where} could not be evaluated on this run ({data['error']}), so nothing is coloured."
    parts = []
    if data.get("policy_description"):
        parts.append(str(data["policy_description"]).strip().rstrip("."))
    rules = data.get("rules") or []
    if rules:
        parts.append("bounds: " + "; ".join(_rule_text(r) for r in rules))
    counts = data.get("counts") or {}
    if counts:
        parts.append(f"gate {str(data.get('status', '?')).upper()}: {counts.get('pass', 0)} passed, "
                     f"{counts.get('fail', 0)} failed, {counts.get('inconclusive', 0)} inconclusive")
    text = f"Policy file{where}: " + ". ".join(parts) + "." if parts else ""
    return text + " The bounds are this policy's, set by whoever runs the audit, not a standard."


def _decision(checks: list[dict], model: str, metric: str, target: Optional[float], group: Optional[str],
              source: str = "target_fmr", estimate: Optional[float] = None) -> Optional[str]:
    """The gate's decision on this number; with ``estimate``, only a check of that very estimate counts
    (a bound decided on another pooling of the edit conditions must not colour this one)."""
    for c in checks:
        if estimate is not None and c.get("estimate") is not None and not _close(c["estimate"], float(estimate)):
            continue
        if c.get("metric") != metric or c.get("model") != model:
            continue
        if c.get("threshold_source", "target_fmr") != source:  # a check at another operating point
            continue
        if target is not None and c.get("target_fmr") is not None and not _close(c["target_fmr"], target):
            continue
        if group is not None and c.get("group") not in (None, group):
            continue
        return str(c.get("decision"))
    return None


def _counts_text(r: pd.Series) -> str:
    if not {"events", "n", "events_ref", "n_ref"} <= set(r.index) or any(fmt._missing(r[k]) for k in ("events", "n", "events_ref", "n_ref")):
        return "counts not computed"
    return f"{fmt.count(r['events'], r['n'])} vs {fmt.count(r['events_ref'], r['n_ref'])}"


def _contrast_cell(r: pd.Series, alpha: float, checks: list[dict], target: float,
                   ratio_row: Optional[pd.Series] = None) -> dict:
    """One headline contrast cell; coloured by the policy's rule on this difference, else by its rule
    on the ratio of the same two rates (``ratio_row``: same model, group, target and pooling), which
    is the same contrast on another scale (``decided_by`` names the metric that decided)."""
    f = fmt.metric_formatter(r["metric"])
    p_adj = r.get("p_adjusted")
    group = r.get("group") if isinstance(r.get("group"), str) else None
    est = float(r["estimate"]) if pd.notna(r["estimate"]) else None
    decided_by = str(r["metric"])
    decision = _decision(checks, str(r["model"]), decided_by, target, group, estimate=est)
    if decision is None and ratio_row is not None and pd.notna(ratio_row["estimate"]):
        decided_by = str(ratio_row["metric"])
        decision = _decision(checks, str(r["model"]), decided_by, target, group, estimate=float(ratio_row["estimate"]))
    return {"estimate": f(r["estimate"]), "ci": fmt.ci(r["ci_lo"], r["ci_hi"], f), "counts": _counts_text(r),
            "p_adjusted": fmt.pvalue(p_adj), "significant": bool(pd.notna(p_adj) and p_adj < alpha),
            "decision": decision, "decided_by": decided_by if decision is not None else None}


def primary_rows(contrasts: Optional[pd.DataFrame]) -> tuple[Optional[pd.DataFrame], str]:
    """(the contrasts the headline shows, a sentence saying which they are).

    With a ``family`` column: the primary family (its pooled estimate ``condition == primary_pool``
    when written, else every primary row); without: the rows pooled over every edit condition, and the
    sentence says the run declares no primary family.

    Parameters
    ----------
    contrasts : pandas.DataFrame or None
        ``results/contrasts.parquet``.

    Returns
    -------
    (pandas.DataFrame or None, str)

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"metric": ["fnmr_diff"] * 3, "condition": ["all", "yaw=+2", "primary_pool"],
    ...                   "family": ["exploratory", "exploratory", "primary"]})
    >>> rows, note = primary_rows(c)
    >>> rows["condition"].tolist(), note.startswith("Primary family: pooled")
    (['primary_pool'], True)
    >>> rows, note = primary_rows(c.drop(columns="family"))
    >>> rows["condition"].tolist(), "not computed" in note
    (['all'], True)
    """
    if contrasts is None or contrasts.empty:
        return None, "Contrasts: not computed (results/contrasts.parquet is absent)."
    c = contrasts
    if "family" in c.columns:
        p = c[c["family"] == "primary"]
        if "condition" in p.columns and (p["condition"] == PRIMARY_POOL).any():
            pooled_metrics = set(p.loc[p["condition"] == PRIMARY_POOL, "metric"])
            p = p[(p["condition"] == PRIMARY_POOL) | ~p["metric"].isin(pooled_metrics)]
            return p, ("Primary family: pooled over the edit conditions whose leakage into the protected measure is "
                       "small (the other rows are exploratory, section 7.3).")
        return p, "Primary family rows (the other rows are exploratory, section 7.3)."
    p = c[c["condition"] == ALL] if "condition" in c.columns else c
    return p, ("Primary family: not computed — results/contrasts.parquet has no family column, so the rows shown are "
               "pooled over every edit condition (the protocol's mix of edits) and are not a declared primary analysis.")


def _group_rows(u: pd.DataFrame, groups: list[str], checks: list[dict], model: str, target: float) -> list[dict]:
    rows = []
    for g in groups:
        r = u[u["group"] == g]
        if r.empty:
            continue
        r = r.iloc[0]
        rows.append({
            "group": fmt.group_label(g),
            "fmr": fmt.rate_count(r["fmr"], r.get("n_false_match"), r.get("n_impostor")),
            "fmr_ci": fmt.ci(r.get("fmr_lo"), r.get("fmr_hi")),
            "fmr_decision": _decision(checks, model, "fmr", target, g),
            "fnmr": fmt.rate_count(r["fnmr"], r.get("n_false_non_match"), r.get("n_genuine")),
            "fnmr_ci": fmt.ci(r.get("fnmr_lo"), r.get("fnmr_hi")),
            "fnmr_decision": _decision(checks, model, "fnmr", target, g),
        })
    return rows


RATIO_METRICS = (("fmr_max_min_ratio", "FMR max / min"), ("fmr_max_geomean", "FMR max / geometric mean"),
                 ("fnmr_max_min_ratio", "FNMR max / min"), ("fnmr_max_geomean", "FNMR max / geometric mean"))


def _ratios(fair: Optional[pd.DataFrame], model: str, target: float, checks: list[dict]) -> list[dict]:
    """Max/min and max/geometric-mean ratios (NIST FRTE Part 8): a value only where the analysis marked it reportable; the smoothing stated."""
    out = []
    if fair is None or not {"model", "metric", "estimate"} <= set(fair.columns):
        return out
    d = fair[(fair["model"] == model)]
    if "target_fmr" in d.columns:
        d = d[d["target_fmr"].isna() | np.isclose(d["target_fmr"].fillna(-1.0), target)]
    for metric, label in RATIO_METRICS:
        r = d[d["metric"] == metric]
        if r.empty:
            continue
        r = r.iloc[0]
        n_min = r.get("n_events_min")
        n_text = f"n={int(n_min)} events in the smallest group" if not fmt._missing(n_min) else "events per group not computed"
        if "reportable" in r.index and not fmt._missing(r["reportable"]) and not bool(r["reportable"]):
            out.append({"label": label, "value": "—", "detail": f"too few events ({n_text}; needs ≥ 10 in every group)",
                        "decision": None})
            continue
        smoothing = r.get("smoothing")
        smooth_text = f"smoothing: {smoothing}" if isinstance(smoothing, str) and smoothing else "smoothing not recorded"
        if "reportable" not in r.index:
            smooth_text += "; reportability not computed"
        else:
            smooth_text += f"; {n_text}"
        worst, best = r.get("worst_group"), r.get("best_group")
        groups = f"{fmt.group_label(worst)} / {fmt.group_label(best)} · " if isinstance(worst, str) and isinstance(best, str) else ""
        out.append({"label": label, "value": fmt.ratio(r["estimate"]),
                    "detail": f"{groups}{fmt.ci(r.get('ci_lo'), r.get('ci_hi'), fmt.ratio)} · {smooth_text}".strip(),
                    "decision": _decision(checks, model, metric, target, None)})
    g = d[d["metric"] == "garbe"]
    if len(g):
        r = g.iloc[0]
        out.append({"label": "GARBE", "value": fmt.num(r["estimate"]), "detail": fmt.ci(r.get("ci_lo"), r.get("ci_hi"), fmt.num),
                    "decision": _decision(checks, model, "garbe", target, None)})
    return out


def _omission(u: pd.DataFrame, groups: list[str], target: float) -> Optional[str]:
    """Why ``target`` is not shown (a group with fewer than 10/target impostor pairs), or None."""
    need = MIN_EXPECTED_FALSE_MATCHES / target
    d = u[u["group"].isin(groups)]
    if d.empty:
        return f"FMR {fmt.pct(target)}: no per-group rows"
    small = d.loc[d["n_impostor"].idxmin()]
    if float(small["n_impostor"]) >= need:
        return None
    return (f"FMR {fmt.pct(target)} not shown: it needs ≥ {need:,.0f} impostor pairs per group "
            f"({MIN_EXPECTED_FALSE_MATCHES} expected false matches); {fmt.group_label(small['group'])} has "
            f"{int(small['n_impostor']):,}")


def _detector_of(meta: dict, model: str) -> str:
    if meta.get("detector"):
        return str(meta["detector"])
    m = re.match(r"\s*([A-Za-z][\w.-]*)", str(meta.get("alignment") or ""))
    return m.group(1) if m else model


def _fte_tiles(run, facts, models: list[str]) -> list[DetectorFte]:
    meta = run.manifest.get("models") or {}
    by_detector: dict[str, list[str]] = {}
    for m in models:
        by_detector.setdefault(_detector_of(dict(meta.get(m) or {}), m), []).append(m)
    joined = facts.emb_status.merge(facts.faces[["face_id", "group"]], on="face_id", how="left")
    out = []
    for det, ms in by_detector.items():
        d = joined[joined["model"] == ms[0]]
        groups, worst, worst_rate = [], "–", -1.0
        for g in facts.groups:
            dg = d[d["group"] == g]
            if dg.empty:
                continue
            k, n = int((dg["status"] != "ok").sum()), len(dg)
            groups.append((fmt.group_label(g), fmt.rate_count(k / n, k, n)))
            if k / n > worst_rate:
                worst_rate, worst = k / n, f"{fmt.group_label(g)} {fmt.rate_count(k / n, k, n)}"
        out.append(DetectorFte(detector=det, models=ms, worst=worst, n_faces=f"{int((d['status'] != 'ok').sum()):,}",
                               groups=groups))
    return out


def _reference_level(protocol) -> Optional[str]:
    """The first protected attribute's reference component of group names (``skin=light``)."""
    ref = str(protocol.reference_group)
    return ref.split("|", 1)[0] if ref else None


def ordering_discussion(facts, resolution_text: str) -> list[str]:
    """A caveat when the group with the worst FMR is the reference (lightest) level, the opposite of the
    demographic differentials NIST FRVT Part 3 (2019) reports on photographs."""
    ref = _reference_level(facts.protocol)
    if ref is None or "skin" not in ref:
        return []
    hits = []
    for m in facts.models:
        u = facts.unitary[(facts.unitary["model"] == m) & facts.unitary["group"].isin(facts.groups)].dropna(subset=["fmr"])
        if u.empty or u["fmr"].max() <= 0:
            continue
        worst = str(u.loc[u["fmr"].idxmax(), "group"])
        if ref in worst.split("|"):
            hits.append((m, fmt.group_label(worst)))
    if not hits:
        return []
    level = fmt.group_label(ref)
    who = ", ".join(f"{m} ({g})" for m, g in hits)
    all_models = len(hits) == len(facts.models)
    return [
        f"Here the {level} skin level, the reference and lightest level, has the highest FMR at the primary target "
        f"{fmt.pct(facts.primary_target)} for {'every model' if all_models else 'some models'}: {who}.",
        "This is the opposite of the ordering NIST found on photographs: FRVT Part 3, Demographic Effects "
        "(Grother, Ngan, Hanaoka, NISTIR 8280, 2019) reports false match rates generally highest for people with "
        "darker skin (West and East African, East Asian faces) and lowest for Eastern European faces.",
        f"Read it as a caveat of the synthetic setting, not as a finding about real people: {resolution_text} generated faces, "
        "upscaled for models trained on photographs, with the protected level set by the generator. The ordering on "
        "synthetic faces need not carry over to photographs.",
    ]


def headline_section(run, facts, resolution_text: str = "small") -> Headline:
    """The first screen of the card (see the module docstring)."""
    from faceaudit.stats.error_rates import enrolled_nothing

    summary = run.summary or {}
    fam = summary.get("primary_family") if isinstance(summary.get("primary_family"), dict) else None
    alpha = float(fam.get("alpha", 0.05)) if fam else 0.05
    policy, checks = load_policy_checks(run)
    rows, note = primary_rows(facts.contrasts)
    fairness = run.result("fairness")
    models = []
    for m in facts.models:
        u_all = facts.unitary_all[(facts.unitary_all["model"] == m)]
        nothing = enrolled_nothing(u_all[u_all["group"].isin(facts.groups)]) if len(u_all) else True
        points, omitted = [], []
        mrows = rows[rows["model"] == m] if rows is not None else None
        eligible = [t for t in facts.targets
                    if _omission(u_all[np.isclose(u_all["target_fmr"], t)], facts.groups, t) is None]
        # the primary operating point first (its contrasts are the primary family), then the others
        for t in sorted(facts.targets, key=lambda x: (not _close(x, facts.primary_target), x)):
            u = u_all[np.isclose(u_all["target_fmr"], t)]
            why = _omission(u, facts.groups, t)
            warning = None
            if why and not eligible and _close(t, facts.primary_target):
                # nothing meets the rule: the primary target stays on the first screen, marked as too few events
                warning = why.replace(" not shown:", " shown although") + "; read each FMR with its counts"
            elif why:
                omitted.append(why)
                continue
            pooled = u[u["group"] == ALL]
            thr = fmt.num(float(pooled["threshold"].iloc[0]), 4) if len(pooled) and pd.notna(pooled["threshold"].iloc[0]) else "–"
            pairs = []
            if mrows is not None and len(mrows):
                at = mrows[mrows["metric"].isin(HEADLINE_METRICS)]
                if "target_fmr" in at.columns:
                    at = at[at["target_fmr"].isna() | np.isclose(at["target_fmr"].fillna(-1.0), t)]
                labels: dict[str, dict] = {}
                allc = facts.contrasts[facts.contrasts["model"] == m]
                ratios = allc[allc["metric"].isin([m_.replace("_diff", "_ratio") for m_ in HEADLINE_METRICS])]
                for _, r in at.iterrows():
                    same = ratios[(ratios["metric"] == str(r["metric"]).replace("_diff", "_ratio"))
                                  & (ratios["group"] == r.get("group"))
                                  & (ratios.get("condition", ALL) == r.get("condition", ALL))]
                    if "target_fmr" in same.columns:
                        same = same[np.isclose(same["target_fmr"].fillna(-1.0), t)]
                    label = F.contrast_label(r)
                    cond = r.get("condition", ALL)
                    if isinstance(cond, str) and cond not in (ALL, PRIMARY_POOL):
                        label = f"{F.condition_label(cond)} · {label}"
                    labels.setdefault(label, {})[str(r["metric"])] = _contrast_cell(
                        r, alpha, checks, t, same.iloc[0] if len(same) else None)
                pairs = [ContrastPair(k, v.get("fmr_diff"), v.get("fnmr_diff")) for k, v in labels.items()]
            points.append(OperatingPoint(target=float(t), target_text=fmt.pct(t), threshold=thr, warning=warning,
                                         groups=_group_rows(u, facts.groups, checks, m, t), contrasts=pairs,
                                         ratios=_ratios(fairness, m, t, checks)))
        n_sig = None
        if mrows is not None and "p_adjusted" in mrows.columns and fam:
            n_sig = int((mrows["p_adjusted"] < alpha).sum())
        models.append(ModelHeadline(name=m, enrolled_nothing=nothing, points=points, omitted=omitted, n_significant=n_sig,
                                    extra_points=_extra_points(facts, m, checks)))
    family = None
    if fam:
        method = str(fam.get("method", "?"))
        family = {"k": int(fam.get("n_significant", 0)), "size": int(fam.get("size", 0)), "method": method,
                  "alpha": alpha,
                  "text": f"{int(fam.get('n_significant', 0))} of {int(fam.get('size', 0))} primary contrasts, {method.capitalize() if method == 'holm' else method}"}
    return Headline(models=models, ftes=_fte_tiles(run, facts, facts.models), family=family, family_note=note,
                    policy=policy, discussion=ordering_discussion(facts, resolution_text),
                    ci_method=ci_method_text(run, facts.error_rates), operating_note=operating_note(facts),
                    policy_note=policy_note(run))


SOURCE_TITLES = {"fixed": "At the fixed threshold (analysis.thresholds)",
                 "calibration_run": "At thresholds calibrated on the real calibration run"}


def _extra_points(facts, model: str, checks: list[dict]) -> list[dict]:
    """One block per extra operating point source: per group FMR and FNMR with counts and CIs."""
    ops = getattr(facts, "operating_points", None)
    if ops is None or not len(ops):
        return []
    blocks = []
    d = ops[ops["model"] == model]
    for source in ("fixed", "calibration_run"):
        ds = d[d["threshold_source"] == source]
        if ds.empty:
            continue
        rows = []
        for target, dt in ds.groupby(ds["target_fmr"].fillna(-1.0), sort=True):
            at = "" if target < 0 else f"FMR {fmt.pct(target)} on real impostors · "
            point = f"{at}threshold {fmt.num(float(dt['threshold'].iloc[0]), 4)}"
            for r in _group_rows(dt, facts.groups + [ALL], [c for c in checks if c.get("threshold_source") == source],
                                 model, None if target < 0 else float(target)):
                rows.append({"point": point, **r})
        blocks.append({"source": source, "title": SOURCE_TITLES[source], "rows": rows})
    return blocks


def operating_note(facts) -> str:
    """The first screen's statement of the FNMR the audit operates at, and, for synthetic faces without
    a calibration run, that a real calibration run is needed to interpret it.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from faceaudit.protocol import Protocol
    >>> u = pd.DataFrame({"model": ["sface"], "group": ["all"], "fnmr": [0.31], "target_fmr": [1e-3]})
    >>> f = SimpleNamespace(unitary=u, models=["sface"], primary_target=1e-3, operating_points=None,
    ...                     protocol=Protocol.model_validate({"name": "x", "n_seeds": 4, "edits": []}))
    >>> operating_note(f)  # doctest: +ELLIPSIS
    "At its global threshold (FMR 0.100% on the audit's own impostors) the audit operates at FNMR 31.0% (sface); ...is needed to interpret these rates."
    """
    u = facts.unitary
    parts = []
    for m in facts.models:
        r = u[(u["model"] == m) & (u["group"] == ALL)]
        if len(r) and pd.notna(r["fnmr"].iloc[0]):
            parts.append(f"{fmt.pct(float(r['fnmr'].iloc[0]))} ({m})")
    if not parts:
        return ""
    text = (f"At its global threshold (FMR {fmt.pct(facts.primary_target)} on the audit's own impostors) the audit "
            f"operates at FNMR {', '.join(parts)}; ")
    proto = facts.protocol
    calibrated = proto.analysis.calibration_run is not None
    synthetic = proto.dataset is None or proto.dataset.design == "experimental"
    if calibrated:
        return text + "the thresholds calibrated on real photographs are shown under each model."
    if synthetic:
        return text + ("a deployed system works at a threshold set on real photographs, so a real calibration run "
                       "(analysis.thresholds: {calibration_run: RUN}) is needed to interpret these rates.")
    return text.rstrip("; ") + "."
