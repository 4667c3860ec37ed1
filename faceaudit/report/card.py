"""Everything the model card shows, read from one run directory into typed sections.

``build_card(run)`` gathers the nine sections of Mitchell et al. (2019), "Model Cards for Model
Reporting", from the run's tables into a :class:`Card`: one small function per part
(``run_facts``, ``header_section``, ``evaluation_section``, ``quantitative_section`` with one
``model_section`` per model, and :func:`faceaudit.report.human.human_section`). The Jinja template
only lays the card out and ``summary_md`` reuses the same values; nothing changes a built card.

The card computes no statistic: every number with an interval comes from a results table the
analysis wrote (:mod:`faceaudit.stats`). Required tables (protocol, faces, pairs, scores,
results/error_rates) raise :class:`BadInput` when missing or malformed; optional ones (contrasts,
dose-response, manipulation check, fairness, generation.json, summary.json) and rows the analysis
did not write become "not computed" notes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.report import fmt
from faceaudit.report import figures as F
from faceaudit.report.evaluation import EvaluationData, evaluation_section
from faceaudit.report.gender import GENDER_TABLES, GenderSection, gender_section
from faceaudit.report.headline import Headline, ci_method_text, gate_record, headline_section, primary_rows
from faceaudit.report.human import HUMAN_TABLES, human_section
from faceaudit.report.real_gap import RealSection, real_section
from faceaudit.report.tables import Table, format_table, json_value
from faceaudit.stats.error_rates import enrolled_nothing
from faceaudit.stats.operating_points import main_operating_point

ERROR_RATE_COLUMNS = ["model", "group", "threshold", "target_fmr", "n_genuine", "n_impostor", "fmr", "fmr_lo", "fmr_hi",
                      "fnmr", "fnmr_lo", "fnmr_hi", "fte_rate"]
CONTRAST_COLUMNS = ["model", "attribute", "level", "reference", "metric", "estimate", "ci_lo", "ci_hi", "p_value", "p_adjusted"]
#: error_rates.edit_attr and contrasts.condition of the rows pooled over every edit condition
ALL = "all"
SIGNIFICANCE = 0.05

METADATA_LABELS = {
    "name": "Name", "version": "Version", "embedding_dim": "Embedding dimension", "architecture": "Architecture",
    "training_data": "Training data", "license": "License", "source": "Source", "input_size": "Input size",
    "alignment": "Alignment", "similarity": "Similarity", "paper": "Paper", "weights": "Weights", "device": "Device",
}
TRAINING_KEYS = ("training_data", "train_data", "trained_on", "training_dataset", "training")
INTENDED_USE_KEYS = ("intended_use", "intended_uses", "use")


@dataclass
class ModelSummary:
    name: str
    metadata: list[tuple[str, str]]
    training_data: Optional[str]
    intended_use: Optional[str]
    threshold: float
    pooled_fmr: float
    worst_fnmr: dict
    best_fnmr: dict
    fnmr_ratio: Optional[float]
    fnmr_ratio_ci: Optional[dict]
    fmr_ratio_ci: Optional[dict]
    garbe: Optional[dict]
    worst_fmr: dict
    best_fmr: dict
    fmr_ratio: Optional[float]
    max_fte: float
    n_fte_faces: int
    n_significant: Optional[int]
    n_contrasts: Optional[int]
    headline_contrast: Optional[dict]
    #: no face of the model enrolled (FTE 100%): no threshold, rate or contrast exists
    enrolled_nothing: bool = False


def _require_columns(df: pd.DataFrame, cols: list[str], where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise BadInput(f"{where}: missing columns {missing}")


# ---------------------------------------------------------------------------------------------
# pieces of the run


def split_error_rates(er: pd.DataFrame) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """(unitary rows: per group pooled over edit conditions, per-condition rows or None).

    The analysis marks the pooled rows ``edit_attr == "all"``; a table without ``edit_attr`` holds
    pooled rows only."""
    if "edit_attr" not in er.columns:
        return er, None
    pooled = er["edit_attr"] == ALL
    inter = er[~pooled]
    return er[pooled], (inter if len(inter) else None)


def dose_curves_from_table(dr: Optional[pd.DataFrame], model: str) -> Optional[pd.DataFrame]:
    """The analysis's per-level mean genuine scores (``row_type == "mean"``) of one model, or None."""
    if dr is None or not {"model", "group", "edit_attr", "edit_level", "mean_score", "ci_lo", "ci_hi"} <= set(dr.columns):
        return None
    d = dr[dr["model"] == model]
    if "row_type" in d.columns:  # the analysis also stores mixed-model terms in this table
        d = d[d["row_type"] == "mean"]
    d = d[d["edit_level"].notna() & d["mean_score"].notna()]
    return d if len(d) else None


def _group_pick(unitary: pd.DataFrame, col: str, worst: bool) -> dict:
    d = unitary.dropna(subset=[col])
    if d.empty:  # no enrolled comparison (every face failed to enrol): the KPI shows a dash
        return {"group": "no enrolled comparison", "value": "–", "ci": "", "raw": None}
    r = d.loc[d[col].idxmax() if worst else d[col].idxmin()]
    return {"group": fmt.group_label(r["group"]), "value": fmt.pct(r[col]),
            "ci": fmt.ci(r.get(f"{col}_lo"), r.get(f"{col}_hi")), "raw": float(r[col])}


def _ratio(worst: dict, best: dict) -> Optional[float]:
    if not worst or not best or worst.get("raw") is None or best.get("raw") is None or best["raw"] <= 0:
        return None
    return worst["raw"] / best["raw"]


# ---------------------------------------------------------------------------------------------
# the card: one function per part, each returning a typed section; build_card assembles them


@dataclass(frozen=True)
class RunFacts:
    """What every part of the card needs to know about the run (read once)."""

    protocol: Any
    faces: pd.DataFrame
    models: list[str]
    groups_order: list[str]  # the protocol's groups
    groups: list[str]  # those present in the run
    attrs: list[str]
    targets: list[float]
    primary_target: float
    error_rates: pd.DataFrame
    unitary_all: pd.DataFrame  # pooled over edit conditions, every target FMR
    unitary: pd.DataFrame  # pooled over edit conditions, the primary target FMR
    inter: Optional[pd.DataFrame]  # per-condition rows at the primary target FMR (None: none written)
    contrasts: Optional[pd.DataFrame]
    primary_contrasts: Optional[pd.DataFrame]
    condition_contrasts: Optional[pd.DataFrame]
    emb_status: pd.DataFrame
    #: pooled rows at the extra operating points of analysis.thresholds (threshold_source fixed or
    #: calibration_run); None when the protocol sets none
    operating_points: Optional[pd.DataFrame] = None


@dataclass(frozen=True)
class Header:
    """Title, protocol and the facts the card's header and every section repeat."""

    title: str
    protocol: Any
    protocol_hash: Optional[str]
    versions: dict
    models: list[str]
    groups: list[str]
    reference_group: str
    dataset: Any  # imported faces (faceaudit import): the card's first lines say what the design supports
    attrs: list[str]
    primary_target: float
    targets: list[float]
    analysis: Any
    run_name: str
    faceaudit_version: str
    #: the protected attributes of this run's groups, as the card names them ("skin tone × gender")
    protected_names: str = "group"
    #: how the intervals were computed, as the analysis recorded it (summary.json / error_rates ci_method)
    ci_method: str = "not recorded in this run's results"


@dataclass(frozen=True)
class ModelSection:
    """One model's part of the quantitative analyses (its KPIs, tables and figures)."""

    summary: ModelSummary
    threshold_rows: list[list[str]]
    inter_table: Optional[Table]  # None: the analysis wrote no per-condition rows for this model
    smallest_cell: Optional[dict]
    figures: dict[str, list[F.Figure]]


@dataclass(frozen=True)
class Quantitative:
    """Section 7 (and the header's key cards): every number comes from a results table."""

    model_summaries: list[ModelSummary]
    thresholds: Table
    unitary_table: Table
    inter_tables: list[dict]
    contrasts_table: Optional[Table]
    condition_contrasts_table: Optional[Table]
    n_contrasts_total: int
    dose_table: Optional[Table]
    dose_fit_notes: list[str]
    fairness_tables: list[dict]
    other_results: list[tuple[str, int]]
    summary_json: Optional[dict]
    figures: dict[str, list[F.Figure]]
    smallest_cell: Optional[dict]
    fte: Table
    max_fte: float
    #: counterfactual twins of results/fmr_matrix.parquet at the primary target (None: no such table)
    fmr_twins: Optional[Table] = None
    #: section 7.1's rows at the extra operating points (None: analysis.thresholds sets none)
    operating_points_table: Optional[Table] = None


@dataclass(frozen=True)
class Card:
    """The whole model card as data; the template lays it out, ``summary_md`` reuses it."""

    header: Header
    evaluation: EvaluationData
    results: Quantitative
    human: Optional[dict]  # section 7.6, when the run has human ratings (faceaudit.report.human)
    headline: Optional[Headline] = None  # the first screen (faceaudit.report.headline)
    #: synthetic versus real (with a calibration run) and DET bands (faceaudit.report.real_gap)
    real: Optional[RealSection] = None
    gender_caveats: Optional[GenderSection] = None  # section 9's gender caveats (faceaudit.report.gender)
    #: results/gate.json as the gate stage wrote it (None: no policy named for this run)
    gate: Optional[dict] = None

    def template_vars(self) -> dict[str, Any]:
        """Every field of every section under its own name (the names the template uses)."""
        out: dict[str, Any] = {}
        for part in (self.header, self.evaluation, self.results):
            out.update({f.name: getattr(part, f.name) for f in fields(part)})
        out["human"] = self.human
        out["headline"] = self.headline
        out["real"] = self.real
        out["gender_caveats"] = self.gender_caveats
        return out


def run_facts(run) -> RunFacts:
    """Read and check the tables the card is built from; the required ones raise :class:`BadInput`."""
    protocol, faces = run.protocol, run.faces
    er_every = run.error_rates
    if er_every is None:
        raise BadInput(f"{run.root / 'results' / 'error_rates.parquet'}: missing; run the `analyze` stage first")
    _require_columns(er_every, ERROR_RATE_COLUMNS, "results/error_rates.parquet")
    # the card's sections read the protocol's target FMRs; the extra operating points have their own blocks
    er = main_operating_point(er_every)
    extra = None
    if "threshold_source" in er_every.columns:
        extra = er_every[er_every["threshold_source"].isin(["fixed", "calibration_run"])
                         & (er_every["edit_attr"] == ALL)].reset_index(drop=True)
    contrasts = main_operating_point(run.contrasts)
    if contrasts is not None and contrasts.empty:  # written empty: no model enrolled a comparison
        contrasts = None
    if contrasts is not None:
        _require_columns(contrasts, CONTRAST_COLUMNS, "results/contrasts.parquet")
    models = run.models
    if not models:
        raise BadInput(f"{run.root}: no models recorded in manifest.json and no scores/*.parquet")
    targets = sorted(er["target_fmr"].dropna().unique().tolist())
    primary_target = next((t for t in protocol.analysis.target_fmr if any(np.isclose(t, targets))),
                          targets[0] if targets else np.nan)
    er_primary = er[np.isclose(er["target_fmr"], primary_target)] if targets else er
    unitary_all, _ = split_error_rates(er)
    unitary, inter = split_error_rates(er_primary)
    groups_order = protocol.group_names
    present = set(unitary["group"]) | set(faces["group"])
    primary_c, condition_c = split_contrasts(contrasts, primary_target) if contrasts is not None else (None, None)
    return RunFacts(protocol=protocol, faces=faces, models=models, groups_order=groups_order,
                    groups=[g for g in groups_order if g in present], attrs=[e.attribute for e in protocol.edits],
                    targets=targets, primary_target=primary_target, error_rates=er, unitary_all=unitary_all,
                    unitary=unitary, inter=inter, contrasts=contrasts, primary_contrasts=primary_c,
                    condition_contrasts=condition_c, emb_status=run.embeddings_status,
                    operating_points=extra if extra is not None and len(extra) else None)


def header_section(run, facts: RunFacts) -> Header:
    from faceaudit import __version__

    protocol = facts.protocol
    return Header(title=f"Model card · {protocol.name}", protocol=protocol,
                  protocol_hash=run.manifest.get("protocol_hash"), versions=run.manifest.get("versions") or {},
                  models=facts.models, groups=[fmt.group_label(g) for g in facts.groups],
                  reference_group=fmt.group_label(protocol.reference_group), dataset=protocol.dataset,
                  attrs=facts.attrs, primary_target=facts.primary_target, targets=facts.targets,
                  analysis=protocol.analysis, run_name=Path(run.root).resolve().name, faceaudit_version=__version__,
                  protected_names=protected_names(protocol), ci_method=ci_method_text(run, facts.error_rates))


def protected_names(protocol) -> str:
    """The protected attributes of the run's groups: ``skin tone``, ``skin tone × gender``, ``race × gender``.

    Examples
    --------
    >>> from faceaudit.protocol import Protocol
    >>> protected_names(Protocol.model_validate({"name": "x", "n_seeds": 4, "edits": []}))
    'skin tone'
    """
    if protocol.dataset is not None:
        names = list(protocol.dataset.attributes)
    else:
        names = [p.attribute for p in protocol.protected_specs]
    return " × ".join(str(n).replace("_", " ") for n in names) or "group"


def _pooled_row(facts: RunFacts, model: str, target: float) -> Optional[pd.Series]:
    """The model's row over every group and condition at ``target`` (its achieved FMR, impostor count)."""
    u = facts.unitary_all
    d = u[(u["model"] == model) & (u["group"] == ALL) & np.isclose(u["target_fmr"], target)]
    return d.iloc[0] if len(d) else None


def model_section(run, facts: RunFacts, model: str, roc, hist, fairness) -> ModelSection:
    """One model's KPIs, threshold rows, per-condition table and figures, read from the results."""
    u = facts.unitary[(facts.unitary["model"] == model) & facts.unitary["group"].isin(facts.groups)]
    if u.empty:
        raise BadInput(f"results/error_rates.parquet: no per-group rows for model {model!r}")
    meta = dict((run.manifest.get("models") or {}).get(model) or {})
    mc = facts.primary_contrasts[facts.primary_contrasts["model"] == model] if facts.primary_contrasts is not None else None
    fair_m = _fairness_for(fairness, model, facts.primary_target)
    nothing = enrolled_nothing(u)
    pooled = _pooled_row(facts, model, facts.primary_target)
    summary = ModelSummary(
        name=model,
        metadata=[(METADATA_LABELS.get(k, k.replace("_", " ").capitalize()), json_value(v)) for k, v in _ordered(meta)],
        training_data=next((json_value(meta[k]) for k in TRAINING_KEYS if meta.get(k)), None),
        intended_use=next((json_value(meta[k]) for k in INTENDED_USE_KEYS if meta.get(k)), None),
        threshold=float(u["threshold"].iloc[0]),
        pooled_fmr=float(pooled["fmr"]) if pooled is not None else np.nan,
        worst_fnmr=_group_pick(u, "fnmr", True), best_fnmr=_group_pick(u, "fnmr", False),
        fnmr_ratio=_ratio(_group_pick(u, "fnmr", True), _group_pick(u, "fnmr", False)),
        fnmr_ratio_ci=fair_m.get("fnmr_max_min_ratio"), fmr_ratio_ci=fair_m.get("fmr_max_min_ratio"),
        garbe=fair_m.get("garbe"),
        worst_fmr=_group_pick(u, "fmr", True), best_fmr=_group_pick(u, "fmr", False),
        fmr_ratio=_ratio(_group_pick(u, "fmr", True), _group_pick(u, "fmr", False)),
        max_fte=float(u["fte_rate"].max()), n_fte_faces=status_counts(facts.emb_status, model),
        n_significant=int((mc["p_adjusted"] < SIGNIFICANCE).sum()) if mc is not None else None,
        n_contrasts=len(mc) if mc is not None else None,
        headline_contrast=_headline_contrast(mc),
        enrolled_nothing=nothing,
    )
    threshold_rows = []
    for t in facts.targets:
        row = _pooled_row(facts, model, t)
        if row is not None and pd.notna(row["threshold"]):
            threshold_rows.append([model, fmt.pct(t), fmt.num(float(row["threshold"]), 4), fmt.pct(row["fmr"]),
                                   f"{int(row['n_impostor']):,}"])
    figures: dict[str, list[F.Figure]] = {"det": [], "scores": [], "fnmr_cond": [], "dose": []}
    if nothing:  # the card says the model enrolled no face and reports nothing else for it
        return ModelSection(summary, threshold_rows, None, None, figures)

    cells = facts.inter[facts.inter["model"] == model] if facts.inter is not None else None
    cells = cells[cells["edit_attr"].isin(facts.attrs)] if cells is not None and len(cells) else None
    inter_table = _intersectional_table(cells, facts.groups, facts.attrs) if cells is not None else None
    smallest = None
    if cells is not None:
        gen_cells = cells[cells["n_genuine"] > 0]
        if len(gen_cells):
            r = gen_cells.loc[gen_cells["n_genuine"].idxmin()]
            smallest = {"n": int(r["n_genuine"]), "n_impostor": int(cells["n_impostor"].min()),
                        "where": f"{fmt.group_label(r['group'])}, {r['edit_attr']} {fmt.level(r['edit_level'])}"}
        figures["fnmr_cond"].append(F.fnmr_by_condition_figure(model, cells, facts.groups, facts.attrs,
                                                                  facts.protocol.analysis.ci_level))
    # the scores stay a required input of a card (the analysis's tables come from them), but the card
    # draws nothing from them: only their presence is checked
    if not run.dir.scores(model).is_file():
        raise BadInput(f"{run.dir.scores(model)}: missing; run the `score` stage first")
    threshold = summary.threshold
    # drawn from the analysis's tables only (an old run without them gets a "not computed" note)
    det = F.det_figure(model, u, facts.groups, facts.primary_target,
                       roc[roc["model"] == model] if roc is not None and len(roc) else None)
    scores = F.score_distribution_figure(model, facts.groups, threshold,
                                         hist[hist["model"] == model] if hist is not None and len(hist) else None)
    if det is not None and scores is not None:
        figures["det"].append(det)
        figures["scores"].append(scores)
    curves = dose_curves_from_table(run.dose_response, model)
    if curves is not None:
        figures["dose"].append(F.dose_response_figure(model, curves, facts.groups, facts.attrs, "",
                                                      facts.protocol.analysis.ci_level))
    return ModelSection(summary, threshold_rows, inter_table, smallest, figures)


def rate_cell(r: pd.Series, col: str, events: str, trials: str) -> str:
    """``rate [CI] (events/trials)``: a rate with its interval and the counts it rests on."""
    text = fmt.with_ci(r[col], r.get(f"{col}_lo"), r.get(f"{col}_hi"))
    counts = fmt.count(r.get(events), r.get(trials))
    return text if counts == "–" else f"{text} ({counts})"


def _unitary_table(facts: RunFacts) -> Table:
    """Section 7.1: per-group rates pooled over edit conditions, for every model and target FMR, with counts."""
    models, order = facts.models, facts.groups_order
    d = facts.unitary_all[facts.unitary_all["model"].isin(models)].copy()
    # protocol order: models as listed, groups light -> dark, the pooled "all" row last
    d["_m"] = d["model"].map({m: i for i, m in enumerate(models)})
    d["_g"] = d["group"].map({g: i for i, g in enumerate(order)}).fillna(len(order))
    d = d.sort_values(["_m", "target_fmr", "_g"], kind="stable")
    eer = "eer" in d.columns and d["eer"].notna().any()
    ci = f"{facts.protocol.analysis.ci_level:.0%} CI"
    rows = []
    for _, r in d.iterrows():
        fte = fmt.with_ci(r["fte_rate"], r.get("fte_lo"), r.get("fte_hi"))
        if not fmt._missing(r.get("n_faces")) and not fmt._missing(r["fte_rate"]):
            # faces that failed to enrol out of the group's faces (the rate is a share of faces)
            fte += f" ({fmt.count(round(float(r['fte_rate']) * float(r['n_faces'])), r['n_faces'])})"
        row = [str(r["model"]), "all groups" if r["group"] == ALL else fmt.group_label(r["group"]), fmt.pct(r["target_fmr"]),
               f"{int(r['n_genuine']):,}", f"{int(r['n_impostor']):,}",
               rate_cell(r, "fmr", "n_false_match", "n_impostor"), rate_cell(r, "fnmr", "n_false_non_match", "n_genuine"), fte]
        if eer:
            row.append(fmt.pct(r["eer"]))
        rows.append(row)
    cols = ["model", "group", "target FMR", "genuine pairs", "impostor pairs", f"FMR [{ci}] (false matches / impostor pairs)",
            f"FNMR [{ci}] (false non-matches / genuine pairs)", "FTE rate"] + (["EER (threshold-free)"] if eer else [])
    return Table(cols, rows, [False, False] + [True] * (len(cols) - 2))


def _operating_points_table(facts: RunFacts) -> Optional[Table]:
    """Section 7.1's second table: per-group rates at the extra operating points (``analysis.thresholds``),
    one block of rows per model and threshold source, with counts."""
    d = facts.operating_points
    if d is None or not len(d):
        return None
    order = facts.groups_order
    d = d[d["model"].isin(facts.models)].copy()
    d["_m"] = d["model"].map({m: i for i, m in enumerate(facts.models)})
    d["_s"] = d["threshold_source"].map({"fixed": 0, "calibration_run": 1})
    d["_g"] = d["group"].map({g: i for i, g in enumerate(order)}).fillna(len(order))
    d = d.sort_values(["_m", "_s", "target_fmr", "_g"], kind="stable")
    ci = f"{facts.protocol.analysis.ci_level:.0%} CI"
    rows = []
    for _, r in d.iterrows():
        source = "fixed" if r["threshold_source"] == "fixed" else f"calibration run, FMR {fmt.pct(r['target_fmr'])}"
        rows.append([str(r["model"]), source, fmt.num(float(r["threshold"]), 4),
                     "all groups" if r["group"] == ALL else fmt.group_label(r["group"]),
                     rate_cell(r, "fmr", "n_false_match", "n_impostor"), rate_cell(r, "fnmr", "n_false_non_match", "n_genuine")])
    cols = ["model", "operating point", "threshold", "group", f"FMR [{ci}] (false matches / impostor pairs)",
            f"FNMR [{ci}] (false non-matches / genuine pairs)"]
    return Table(cols, rows, [False, False, True, False, True, True])


def quantitative_section(run, facts: RunFacts) -> Quantitative:
    """Section 7: per-model parts, contrasts, dose-response, fairness summaries and other results."""
    roc, hist, fairness = run.result("roc"), run.result("score_hist"), main_operating_point(run.result("fairness"))
    parts = [model_section(run, facts, m, roc, hist, fairness) for m in facts.models]
    figures: dict[str, list[F.Figure]] = {"det": [], "scores": [], "fnmr_cond": [], "forest": [], "dose": [],
                                          "forest_exploratory": [], "fmr_matrix": []}
    for part in parts:
        for kind, items in part.figures.items():
            figures[kind] += items
    pc, cc = facts.primary_contrasts, facts.condition_contrasts
    level = facts.protocol.analysis.ci_level
    primary, _ = primary_rows(facts.contrasts)
    if primary is not None and "target_fmr" in primary.columns:
        t = primary["target_fmr"]
        primary = primary[t.isna() | np.isclose(t.fillna(-1.0), facts.primary_target)]
    exploratory = _exploratory_fnmr(facts)
    for i, m in enumerate(facts.models):
        pm = primary[primary["model"] == m] if primary is not None else None
        if pm is not None and len(pm):
            pm = pm.assign(label=[_forest_label(r) for _, r in pm.iterrows()])
            figures["forest"].append(F.forest_figure(f"forest-{m}", f"Primary contrasts · {m}", pm, [m], "label",
                                                     SIGNIFICANCE, level, color_index=i))
        em = exploratory[exploratory["model"] == m] if exploratory is not None else None
        if em is not None and len(em):
            em = em.assign(label=[_forest_label(r) for _, r in em.iterrows()])
            figures["forest_exploratory"].append(F.forest_figure(
                f"forest-exploratory-{m}", f"FNMR contrasts within each edit condition · {m}", em, [m],
                "label", SIGNIFICANCE, level, color_index=i))
    fmr_matrix = run.result("fmr_matrix")
    twins = None
    if fmr_matrix is not None and len(fmr_matrix):
        at = fmr_matrix[np.isclose(fmr_matrix["target_fmr"].astype(float), facts.primary_target)]
        if "threshold_source" in at.columns:
            at = at[at["threshold_source"] == "target_fmr"]
        for m in facts.models:
            cells = at[(at["model"] == m) & (at["kind"] == "impostor")]
            if len(cells):
                figures["fmr_matrix"].append(F.fmr_matrix_figure(m, cells, facts.groups, facts.primary_target, level))
        twins = _twins_table(at[at["kind"] == "twin"], level)
    fairness_tables = [{"name": n, "table": _fairness_table(df, level), "n": len(df)}
                       for n in run.result_names if n.startswith("fairness") for df in [main_operating_point(run.result(n))]]
    # roc and score_hist are drawn as the DET and score-distribution figures; human_* in section 7.6
    known = {"error_rates", "contrasts", "dose_response", "manipulation_check", "roc", "score_hist", "leakage", "fmr_matrix",
             "det_bands", "synthetic_vs_real", "synthetic_vs_real_hist", *HUMAN_TABLES, *GENDER_TABLES}
    other = [(n, len(run.result(n))) for n in run.result_names if n not in known and not n.startswith("fairness")]
    cells = [p.smallest_cell for p in parts if p.smallest_cell is not None]
    summaries = [p.summary for p in parts]
    dose = run.dose_response
    return Quantitative(
        model_summaries=summaries,
        thresholds=Table(["model", "target FMR", "global threshold", "achieved FMR (pooled impostors)", "impostor pairs"],
                         [r for p in parts for r in p.threshold_rows], [False, True, True, True, True]),
        unitary_table=_unitary_table(facts),
        operating_points_table=_operating_points_table(facts),
        inter_tables=[{"model": p.summary.name, "table": p.inter_table, "enrolled_nothing": p.summary.enrolled_nothing,
                       "finding": _cell_range(facts, p.summary.name)} for p in parts],
        contrasts_table=_contrasts_table(pc, level=level) if pc is not None else None,
        condition_contrasts_table=_contrasts_table(cc, True, level) if cc is not None and len(cc) else None,
        n_contrasts_total=len(facts.contrasts) if facts.contrasts is not None else 0,
        dose_table=_dose_table(dose) if dose is not None else None,
        dose_fit_notes=_dose_fit_notes(dose),
        fairness_tables=fairness_tables, other_results=other, fmr_twins=twins, summary_json=run.summary, figures=figures,
        smallest_cell=min(cells, key=lambda c: c["n"]) if cells else None,
        fte=_fte_by_group(facts.emb_status, facts.faces, facts.models, facts.groups),
        max_fte=max((m.max_fte for m in summaries), default=0.0),
    )


def _cell_range(facts: RunFacts, model: str) -> Optional[str]:
    """The section's finding in one line: the lowest and highest cell FNMR of the model."""
    cells = facts.inter[facts.inter["model"] == model] if facts.inter is not None else None
    if cells is None:
        return None
    cells = cells[cells["edit_attr"].isin(facts.attrs) & cells["group"].isin(facts.groups)].dropna(subset=["fnmr"])
    if cells.empty:
        return None
    lo, hi = cells.loc[cells["fnmr"].idxmin()], cells.loc[cells["fnmr"].idxmax()]
    where = lambda r: f"{fmt.group_label(r['group'])}, {r['edit_attr']} {fmt.level(r['edit_level'])}"  # noqa: E731
    return f"FNMR from {fmt.pct(lo['fnmr'])} ({where(lo)}) to {fmt.pct(hi['fnmr'])} ({where(hi)})"


def _forest_label(r: pd.Series) -> str:
    cond = r.get("condition", ALL)
    label = F.contrast_label(r)
    return label if not isinstance(cond, str) or cond in (ALL, "primary_pool") else f"{F.condition_label(cond)} · {label}"


def _exploratory_fnmr(facts: RunFacts) -> Optional[pd.DataFrame]:
    """FNMR contrasts within each edit condition at the primary target, whichever family they belong
    to (the default primary analysis declares the within-condition rows primary too; the headline shows
    only their pooled estimate, so this plot is where each condition's contrast is seen)."""
    cc = facts.condition_contrasts
    if cc is None or cc.empty:
        return None
    return cc[(cc["metric"] == "fnmr_diff") & (cc["condition"] != "primary_pool")]


def build_card(run) -> Card:
    """The model card of a run (:func:`faceaudit.run.load_run`), read from its tables; computes no statistic."""
    facts = run_facts(run)
    evaluation = evaluation_section(run, facts.groups, facts.attrs)
    results = quantitative_section(run, facts)
    real = real_section(run, facts)
    results.figures.update(real.figures)  # drawn by the same loader as every other figure
    return Card(header=header_section(run, facts), evaluation=evaluation,
                results=results, human=human_section(run, facts.groups),
                headline=headline_section(run, facts, evaluation.resolution_text), real=real,
                gender_caveats=gender_section(run, facts.models), gate=gate_record(run))


def _ordered(meta: dict) -> list[tuple[str, Any]]:
    """Known metadata keys in METADATA_LABELS order (name and version first), then the rest."""
    known = [k for k in METADATA_LABELS if k in meta]
    return [(k, meta[k]) for k in known + sorted(k for k in meta if k not in METADATA_LABELS)]


def status_counts(emb_status: pd.DataFrame, model: str) -> int:
    d = emb_status[emb_status["model"] == model]
    return int((d["status"] != "ok").sum())


def _fte_by_group(emb_status: pd.DataFrame, faces: pd.DataFrame, models: list[str], groups: list[str]) -> Table:
    rows = []
    joined = emb_status.merge(faces[["face_id", "group"]], on="face_id", how="left")
    for m in models:
        d = joined[joined["model"] == m]
        cells = []
        for g in groups:
            dg = d[d["group"] == g]
            cells.append(f"{int((dg['status'] != 'ok').sum())} / {len(dg):,}" if len(dg) else "–")
        rows.append([m] + cells)
    return Table(["model"] + [fmt.group_label(g) for g in groups], rows, [False] + [True] * len(groups))


def split_contrasts(c: pd.DataFrame, primary_target: float) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """(contrasts pooled over edit conditions, contrasts within one condition), at the primary target FMR.

    Threshold-free metrics (genuine score, FTE) have no target FMR (NaN) and are kept.
    """
    if "target_fmr" in c.columns:
        t = c["target_fmr"]
        c = c[t.isna() | np.isclose(t.fillna(-1.0), primary_target)]
    if "condition" not in c.columns:
        return c, None
    pooled = c["condition"] == ALL
    return c[pooled], c[~pooled]


def _fairness_for(fair: Optional[pd.DataFrame], model: str, primary_target: float) -> dict[str, dict]:
    """{metric: {"value": "2.20×", "ci": "[…]"}} for one model at the primary target (or threshold-free)."""
    if fair is None or not {"model", "metric", "estimate"} <= set(fair.columns):
        return {}
    d = fair[fair["model"] == model]
    if "target_fmr" in d.columns:
        d = d[d["target_fmr"].isna() | np.isclose(d["target_fmr"].fillna(-1.0), primary_target)]
    out = {}
    for _, r in d.iterrows():
        f = fmt.metric_formatter(r["metric"])
        out[str(r["metric"])] = {"value": f(r["estimate"]), "ci": fmt.ci(r.get("ci_lo"), r.get("ci_hi"), f)}
    return out


def _headline_contrast(mc: Optional[pd.DataFrame]) -> Optional[dict]:
    """The verdict line: the FNMR difference of the protected attribute that is most significant
    (then largest); other metrics only when the run has no FNMR contrast."""
    if mc is None or mc.empty:
        return None
    d = mc.copy()
    d["_fnmr"] = d["metric"].astype(str).isin(["fnmr_diff", "fnmr"])
    d["_rate"] = d["metric"].map(lambda m: fmt.metric_kind(m) == "rate_diff")
    d["_abs"] = d["estimate"].abs()
    d = d.sort_values(["_fnmr", "_rate", "p_adjusted", "_abs"], ascending=[False, False, True, False])
    return contrast_dict(d.iloc[0])


def contrast_dict(r: pd.Series) -> dict:
    f = fmt.metric_formatter(r["metric"])
    return {"model": r["model"], "label": F.contrast_label(r), "metric": str(r["metric"]),
            "metric_label": F.metric_label(r["metric"]),
            "condition": F.condition_label(r.get("condition", "all")),
            "estimate": f(r["estimate"]), "ci": fmt.ci(r["ci_lo"], r["ci_hi"], f), "p_adjusted": fmt.pvalue(r["p_adjusted"]),
            "significant": bool(r["p_adjusted"] < SIGNIFICANCE) if pd.notna(r["p_adjusted"]) else False}


def _contrast_estimate_text(r: pd.Series, cd: dict) -> str:
    """Estimate [CI], then the counts it rests on and, for ratios, reportability and smoothing."""
    text = f"{cd['estimate']} {cd['ci']}".strip()
    if fmt.metric_kind(r["metric"]) == "ratio" and "reportable" in r.index and not fmt._missing(r["reportable"]) \
            and not bool(r["reportable"]):
        n_min = r.get("n_events_min")
        text = f"—, too few events (n={int(n_min) if not fmt._missing(n_min) else '?'})"
    if {"events", "n", "events_ref", "n_ref"} <= set(r.index) and not fmt._missing(r["n"]):
        text += f"\n{fmt.count(r['events'], r['n'])} vs {fmt.count(r['events_ref'], r['n_ref'])}"
    if fmt.metric_kind(r["metric"]) == "ratio" and isinstance(r.get("smoothing"), str) and r["smoothing"]:
        text += f"\nsmoothing: {r['smoothing']}"
    return text


def _contrasts_table(c: pd.DataFrame, with_condition: bool = False, level: float = 0.95) -> Table:
    d = c.sort_values(["p_adjusted", "p_value", "model"], na_position="last", kind="stable")
    family = "family" in d.columns
    rows = []
    for _, r in d.iterrows():
        cd = contrast_dict(r)
        row = [cd["model"], cd["metric_label"], cd["label"]] + ([cd["condition"]] if with_condition else [])
        row += [str(r["family"])] if family else []
        rows.append(row + [_contrast_estimate_text(r, cd), fmt.pvalue(r["p_value"]), cd["p_adjusted"],
                           "yes" if cd["significant"] else "no"])
    cols = ["model", "metric", "contrast"] + (["condition"] if with_condition else []) + (["family"] if family else [])
    cols += [f"estimate [{level:.0%} CI] (events / pairs vs reference)", "p", "p adjusted", f"significant (α={SIGNIFICANCE:g})"]
    numeric = [False] * (len(cols) - 4) + [True, True, True, False]
    return Table(cols, rows, numeric)


def _fairness_estimate_text(r: pd.Series, f) -> str:
    """Estimate [CI]; a ratio the analysis marked not reportable reads "—, too few events (n=…)", and a
    ratio's smoothing is stated."""
    text = f"{f(r['estimate'])} {fmt.ci(r.get('ci_lo'), r.get('ci_hi'), f)}".strip()
    if fmt.metric_kind(r["metric"]) != "ratio":
        return text
    if "reportable" in r.index and not fmt._missing(r["reportable"]) and not bool(r["reportable"]):
        n_min = r.get("n_events_min")
        text = f"—, too few events (n={int(n_min) if not fmt._missing(n_min) else '?'})"
    if isinstance(r.get("smoothing"), str) and r["smoothing"]:
        text += f"\nsmoothing: {r['smoothing']}"
    return text


def _fairness_table(df: pd.DataFrame, level: float = 0.95) -> Table:
    """Fairness summaries with each estimate formatted by its metric (ratios ×, rate gaps pp)."""
    if not {"model", "metric", "estimate"} <= set(df.columns):
        return format_table(df)
    rows = []
    for _, r in df.iterrows():
        f = fmt.metric_formatter(r["metric"])
        rows.append([
            str(r["model"]),
            fmt.pct(r["target_fmr"]) if pd.notna(r.get("target_fmr")) else "threshold-free",
            F.metric_label(r["metric"]),
            _fairness_estimate_text(r, f),
            fmt.group_label(r["worst_group"]) if isinstance(r.get("worst_group"), str) else "–",
            fmt.group_label(r["best_group"]) if isinstance(r.get("best_group"), str) else "–",
        ])
    return Table(["model", "target FMR", "metric", f"estimate [{level:.0%} CI]", "worst group", "best group"], rows,
                 [False, True, False, True, False, False])


def _twins_table(tw: pd.DataFrame, level: float = 0.95) -> Optional[Table]:
    """Counterfactual twins (the same seed's prototype at two protected levels) at the primary target."""
    if not len(tw):
        return None
    ci = f"{level:.0%} CI"
    rows = [[r["model"], fmt.group_label(r["group_a"]), fmt.group_label(r["group_b"]),
             f"{fmt.rate_count(r['fmr'], r['n_false_match'], r['n_impostor'])} {fmt.ci(r['fmr_lo'], r['fmr_hi'])}"]
            for _, r in tw.iterrows()]
    return Table(["model", "level", "counterfactual level", f"twins matched [{ci}] (matches / seeds)"], rows,
                 [False, False, False, True])


def _dose_table(dr: pd.DataFrame) -> Table:
    """The mixed-model terms of the dose-response table (the per-level means are the figure)."""
    if "row_type" in dr.columns and (dr["row_type"] != "mean").any():
        terms = dr[dr["row_type"] != "mean"].copy()
        terms["group"] = terms["group"].map(fmt.group_label)
        cols = [c for c in ["model", "edit_attr", "group", "row_type", "term", "estimate", "p_value", "method", "converged"]
                if c in terms.columns]
        return format_table(terms, cols, rename={"row_type": "row", "p_value": "p", "edit_attr": "edit"})
    return format_table(dr)


def _dose_fit_notes(dr: Optional[pd.DataFrame]) -> list[str]:
    if dr is None or "fit_note" not in dr.columns:
        return []
    notes = dr["fit_note"].dropna().astype(str)
    return sorted(set(n for n in notes if n.strip()))


def _intersectional_table(cells: pd.DataFrame, groups: list[str], attrs: list[str]) -> Table:
    """Rows: edit conditions; columns: groups; cells: FNMR [CI] (false non-matches / genuine pairs) and
    FMR [CI] (false matches / impostor pairs) of that cell, so every count is the cell's own."""
    rows = []
    for a in attrs:
        for lv in sorted(cells.loc[cells["edit_attr"] == a, "edit_level"].unique()):
            row = [a, fmt.level(lv)]
            for g in groups:
                r = cells[(cells["edit_attr"] == a) & (cells["edit_level"] == lv) & (cells["group"] == g)]
                if r.empty:
                    row.append("–")
                    continue
                r = r.iloc[0]
                fnmr = rate_cell(r, "fnmr", "n_false_non_match", "n_genuine")
                fmr = rate_cell(r, "fmr", "n_false_match", "n_impostor")
                if fmt.count(r.get("n_false_non_match"), r.get("n_genuine")) == "–":  # counts not written: pairs
                    fnmr += f" (n={int(r['n_genuine']):,})"
                    fmr += f" (n={int(r['n_impostor']):,})"
                row.append(f"{fnmr}\nFMR {fmr}")
            rows.append(row)
    return Table(["edit", "level"] + [fmt.group_label(g) for g in groups], rows,
                 [False, True] + [True] * len(groups))
