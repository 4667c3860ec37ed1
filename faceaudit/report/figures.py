"""Plotly figures of the model card, as plotly.js figure specs (``{"data": [...], "layout": {...}}``).

The page embeds plotly.js once and every figure as JSON drawn by one loader (see ``render.py``).
Specs are built as plain dicts rather than ``plotly.graph_objects`` because graph_objects validates
every property update and made rendering ~10x slower; ``Figure.to_plotly()`` turns a spec into a
validated ``go.Figure`` (the tests do this for every figure, so a misspelt property still fails).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from faceaudit.report import fmt

#: Okabe–Ito colours (colour-blind safe). Deliberately *not* skin-like shades: colour identifies a
#: group, it does not depict it.
PALETTE = ["#E69F00", "#009E73", "#0072B2", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"]
MODEL_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]

FONT = "-apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
AXIS = dict(showgrid=True, gridcolor="#e6e6e6", zeroline=False, linecolor="#999", showline=True, ticks="outside",
            tickcolor="#999", automargin=True)
#: log-axis ticks for error rates, labelled as percentages
LOG_TICKS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    spec: dict

    @property
    def height(self) -> int:
        return int(self.spec["layout"]["height"])

    def to_json(self) -> str:
        text = json.dumps(self.spec, default=_json_default, separators=(",", ":"), allow_nan=False)
        # "</" would end the <script> element the JSON sits in; "<\/" is the same JSON string.
        return text.replace("</", "<\\/")

    def to_plotly(self):
        """The spec as a validated ``plotly.graph_objects.Figure`` (raises on unknown properties)."""
        import plotly.graph_objects as go

        return go.Figure(json.loads(self.to_json()))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(values) -> list:
    """A list for JSON: NaN/inf become null (plotly.js leaves a gap)."""
    out = []
    for v in np.asarray(values, dtype=float).tolist():
        out.append(v if math.isfinite(v) else None)
    return out


def group_colors(groups: list[str]) -> dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(height: int, **extra: Any) -> dict:
    layout = dict(
        font=dict(family=FONT, size=12, color="#222"),
        paper_bgcolor="white", plot_bgcolor="white", height=height,
        margin=dict(l=60, r=20, t=40, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, font=dict(size=11)),
        hoverlabel=dict(font=dict(family=FONT, size=11)),
        xaxis=dict(AXIS), yaxis=dict(AXIS),
    )
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(layout.get(k), dict):
            layout[k] = {**layout[k], **v}
        else:
            layout[k] = v
    return layout


def _log_rate_axis(title: str, lo: float) -> dict:
    return dict(AXIS, type="log", title=dict(text=title), tickvals=LOG_TICKS, ticktext=[fmt.pct(t) for t in LOG_TICKS],
                range=[math.log10(lo), 0])


def _vline(x: float, color: str, dash: str, xref: str = "x", yref: str = "y domain") -> dict:
    return dict(type="line", x0=x, x1=x, y0=0, y1=1, xref=xref, yref=yref, line=dict(color=color, dash=dash, width=1))


# ---------------------------------------------------------------------------------------------
# DET curves and score distributions


def det_figure(model: str, unitary: pd.DataFrame, groups: list[str], target_fmr: float,
               roc: Optional[pd.DataFrame]) -> Optional[Figure]:
    """DET curves per group from the analysis's ``results/roc.parquet`` rows of the model (None without them:
    the card draws only what the analysis tabulated)."""
    if roc is None or not len(roc):
        return None
    colors = group_colors(groups)
    traces, floor = [], 1.0
    for g in groups:
        r = roc[roc["group"] == g]
        fmr, fnmr = r["fmr"].to_numpy(dtype=float), r["fnmr"].to_numpy(dtype=float)
        keep = (fmr > 0) & (fnmr > 0)  # log axes cannot show 0
        if keep.any():
            floor = min(floor, fmr[keep].min(), fnmr[keep].min())
        label = fmt.group_label(g)
        traces.append(dict(type="scatter", x=fmr[keep], y=fnmr[keep], mode="lines", name=label, legendgroup=g,
                           line=dict(color=colors[g], width=2),
                           hovertemplate=f"FMR %{{x:.3%}}<br>FNMR %{{y:.2%}}<extra>{label}</extra>"))
        row = unitary[unitary["group"] == g]
        if len(row) and row["fmr"].iloc[0] > 0 and row["fnmr"].iloc[0] > 0:
            traces.append(dict(type="scatter", x=[row["fmr"].iloc[0]], y=[row["fnmr"].iloc[0]], mode="markers",
                               marker=dict(color=colors[g], size=9, line=dict(color="white", width=1)),
                               showlegend=False, legendgroup=g,
                               hovertemplate=f"at the global threshold<br>FMR %{{x:.3%}}<br>FNMR %{{y:.2%}}<extra>{label}</extra>"))
    lo = max(1e-5, 10 ** math.floor(math.log10(max(min(floor, target_fmr), 1e-5))))
    layout = _layout(
        380,
        xaxis=_log_rate_axis("FMR (false match rate)", lo),
        yaxis=_log_rate_axis("FNMR (false non-match rate)", lo),
        shapes=[_vline(target_fmr, "#777", "dash")],
        annotations=[dict(x=math.log10(target_fmr), y=1, xref="x", yref="paper", text=f"target FMR {fmt.pct(target_fmr)}",
                          showarrow=False, xanchor="left", yanchor="top", xshift=3, font=dict(size=10, color="#555"))],
    )
    return Figure(f"det-{model}", f"DET curves · {model}",
                  "Each curve sweeps the threshold over one group's genuine and impostor scores (log axes; "
                  "points where a rate is 0 cannot be drawn). Dots: the group's operating point at the global "
                  "threshold; dashed line: the target FMR the threshold was set for on pooled impostors.",
                  dict(data=traces, layout=layout))


KIND_COLORS = {"genuine": "#0072B2", "impostor": "#D55E00"}


def _group_grid(n: int, n_cols: int, panel_px: int, **extra: Any) -> tuple[dict, list[dict]]:
    """Layout of ``n`` small panels (``n_cols`` per row) sharing both axes, and each panel's axis refs."""
    n_cols = max(1, min(n_cols, n))
    n_rows = max(1, -(-n // n_cols))
    top, bottom = 64, 50
    height = top + bottom + n_rows * panel_px
    # the legend sits above the panels' titles (one title per panel at the top of its domain)
    layout = _layout(height, margin=dict(t=top, b=bottom), legend=dict(y=1 + 30 / (n_rows * panel_px)), **extra)
    gx, gy = 0.04, 0.5 * 40 / height  # gaps: 4% of the width, ~40 px between rows
    w = (1 - gx * (n_cols - 1)) / n_cols
    h = (1 - gy * (n_rows - 1)) / n_rows
    refs = []
    for i in range(n):
        r, c = divmod(i, n_cols)
        suffix = "" if i == 0 else str(i + 1)
        x0, y1 = c * (w + gx), 1 - r * (h + gy)
        xa = dict(AXIS, domain=[x0, x0 + w], anchor=f"y{suffix}")
        ya = dict(AXIS, domain=[max(0.0, y1 - h), y1], anchor=f"x{suffix}")
        if i:
            xa["matches"], ya["matches"] = "x", "y"
        if c:
            ya["showticklabels"] = False
        layout[f"xaxis{suffix}"] = {**xa, **extra.get("xaxis", {})} if i == 0 else xa
        layout[f"yaxis{suffix}"] = {**ya, **extra.get("yaxis", {})} if i == 0 else ya
        refs.append({"x": f"x{suffix}", "y": f"y{suffix}", "xc": x0 + w / 2, "ytop": y1})
    return layout, refs


def score_distribution_figure(model: str, groups: list[str], threshold: Optional[float],
                              hist: Optional[pd.DataFrame]) -> Optional[Figure]:
    """Genuine and impostor score densities, one small panel per group on shared axes (small multiples
    rather than one overlay of every group's curves), from the model's ``results/score_hist.parquet``
    rows (None without them)."""
    if hist is None or not len(hist):
        return None
    layout, refs = _group_grid(len(groups), 3, 150, xaxis=dict(title=dict(text="")), yaxis=dict(title=dict(text="density")))
    traces, shapes, annotations = [], [], []
    for i, g in enumerate(groups):
        label = fmt.group_label(g)
        ax = refs[i]
        for kind in ("genuine", "impostor"):
            h = hist[(hist["group"] == g) & (hist["kind"] == kind)].sort_values("bin_lo")
            if h.empty:
                continue
            x = (h["bin_lo"].to_numpy() + h["bin_hi"].to_numpy()) / 2
            y, n = h["density"].to_numpy(), int(h["count"].sum())
            traces.append(dict(type="scatter", x=np.round(x, 5), y=np.round(y, 5), mode="lines",
                               line=dict(color=KIND_COLORS[kind], width=1.6, shape="hvh"),
                               name=kind, legendgroup=kind, showlegend=i == 0, xaxis=ax["x"], yaxis=ax["y"],
                               hovertemplate=f"score %{{x:.3f}}<br>density %{{y:.2f}}<extra>{label} {kind} (n={n:,})</extra>"))
        if threshold is not None and np.isfinite(threshold):
            shapes.append(dict(type="line", x0=threshold, x1=threshold, y0=0, y1=1, xref=ax["x"], yref=f"{ax['y']} domain",
                               line=dict(color="#333", dash="dash", width=1)))
        annotations.append(dict(text=label, x=ax["xc"], y=ax["ytop"], xref="paper", yref="paper", xanchor="center",
                                yanchor="bottom", showarrow=False, font=dict(size=12)))
    layout.update(shapes=shapes, annotations=annotations)
    thr = f" at {fmt.num(threshold)}" if threshold is not None and np.isfinite(threshold) else ""
    return Figure(f"scores-{model}", f"Score distributions · {model}",
                  "One panel per group on shared axes (similarity score, higher = more similar): histogram densities of "
                  f"genuine and impostor scores; the dashed line is the global threshold{thr}. Genuine mass left of it "
                  "is FNMR, impostor mass right of it is FMR.",
                  dict(data=traces, layout=layout))


# ---------------------------------------------------------------------------------------------
# error rates by edit condition, contrasts, dose-response


def _attr_panels(attrs: list[str], height: int, y_title: str, **extra: Any) -> dict:
    """Layout with one panel per edit attribute side by side, sharing the y axis."""
    n = max(1, len(attrs))
    gap = 0.04
    width = (1 - gap * (n - 1)) / n
    layout = _layout(height, margin=dict(t=80), legend=dict(y=1.14), **extra)
    annotations = list(layout.get("annotations", []))
    for i, a in enumerate(attrs):
        suffix = "" if i == 0 else str(i + 1)
        x0 = i * (width + gap)
        layout[f"xaxis{suffix}"] = dict(AXIS, domain=[x0, x0 + width], anchor=f"y{suffix}",
                                        title=dict(text="edit level (SD)"))
        y = dict(AXIS, anchor=f"x{suffix}")
        if i == 0:
            y.update(title=dict(text=y_title))
        else:
            y.update(matches="y", showticklabels=False)
        layout[f"yaxis{suffix}"] = {**y, **extra.get("yaxis", {})} if i == 0 else y
        annotations.append(dict(text=a, x=x0 + width / 2, y=1.0, xref="paper", yref="paper", xanchor="center",
                                yanchor="bottom", showarrow=False, font=dict(size=13)))
    layout["annotations"] = annotations
    return layout


def _axes(i: int) -> dict:
    suffix = "" if i == 0 else str(i + 1)
    return dict(xaxis=f"x{suffix}", yaxis=f"y{suffix}")


def fnmr_by_condition_figure(model: str, cells: pd.DataFrame, groups: list[str], attrs: list[str],
                             ci_level: float = 0.95) -> Figure:
    """FNMR per group at each edit level, with CI error bars (the intersectional analysis)."""
    colors = group_colors(groups)
    traces = []
    for j, a in enumerate(attrs):
        for g in groups:
            d = cells[(cells["edit_attr"] == a) & (cells["group"] == g)].sort_values("edit_level")
            if d.empty:
                continue
            label = fmt.group_label(g)
            trace = dict(type="scatter", x=d["edit_level"].to_numpy(), y=_finite(d["fnmr"]), mode="lines+markers",
                         name=label, legendgroup=g, showlegend=j == 0, line=dict(color=colors[g], width=2),
                         marker=dict(size=6), hovertemplate=f"{a} %{{x:+g}}<br>FNMR %{{y:.1%}}<extra>{label}</extra>", **_axes(j))
            if {"fnmr_lo", "fnmr_hi"} <= set(d.columns) and d["fnmr_lo"].notna().any():
                trace["error_y"] = dict(type="data", symmetric=False, array=_finite((d["fnmr_hi"] - d["fnmr"]).clip(lower=0)),
                                        arrayminus=_finite((d["fnmr"] - d["fnmr_lo"]).clip(lower=0)), thickness=1, width=3,
                                        color=colors[g])
            traces.append(trace)
    layout = _attr_panels(attrs, 340, "FNMR at the global threshold", yaxis=dict(tickformat=".0%", rangemode="tozero"))
    return Figure(f"fnmr-cond-{model}", f"FNMR by edit condition · {model}",
                  "FNMR of each group at each nuisance-edit level, at the model's single global threshold; bars are "
                  f"{ci_level:.0%} CIs.", dict(data=traces, layout=layout))


def contrast_label(row: pd.Series) -> str:
    """``dark vs light`` for the protected attribute (also within a condition: ``skin_tone|yaw=+2``)."""
    attr = str(row["attribute"]).split("|", 1)[0]
    lv, ref = row["level"], row["reference"]
    kind = row.get("contrast", "cell") if hasattr(row, "get") else "cell"
    if kind == "interaction":
        # skin_tone:gender dark:female -> "interaction dark × female (vs light × male)"
        return f"interaction {str(lv).replace(':', ' × ')} (vs {str(ref).replace(':', ' × ')})"
    if kind == "marginal":
        return f"{_level_text(lv)} vs {_level_text(ref)} ({attr}, pooled)"
    if "+" in attr:  # a cell of crossed attributes: dark|female vs light|male
        return f"{str(lv).replace('|', ' ')} vs {str(ref).replace('|', ' ')}"
    if attr in ("skin_tone", "skin", "group"):
        return f"{fmt.group_label(lv)} vs {fmt.group_label(ref)}"
    return f"{attr} {_level_text(lv)} vs {_level_text(ref)}"


def condition_label(cond: Any) -> str:
    """``lighting=-2`` -> ``lighting -2``; ``all`` -> ``pooled``."""
    c = str(cond)
    if c in ("all", "nan", "None"):
        return "pooled"
    if c == "primary_pool":
        return "pooled over the primary edits"
    return c.replace("=", " ")


def _level_text(v) -> str:
    try:
        return fmt.level(float(v))
    except (TypeError, ValueError):
        return str(v)


def metric_label(metric: str) -> str:
    names = {"fnmr_diff": "FNMR difference", "fmr_diff": "FMR difference", "fte_rate_diff": "FTE difference",
             "genuine_score_diff": "mean genuine score difference", "fnmr_ratio": "FNMR ratio", "fmr_ratio": "FMR ratio",
             "gfnmr_diff": "GFNMR difference", "fnmr_interaction": "FNMR interaction (difference of differences)",
             "fnmr_ratio_interaction": "FNMR interaction (ratio of ratios)",
             "fmr_interaction": "FMR interaction (difference of differences)",
             "genuine_score_interaction": "genuine score interaction (difference of differences)"}
    return names.get(str(metric), str(metric).replace("_", " "))


#: panel order of the pooled forest plot; other metrics follow in table order
FOREST_ORDER = ["fnmr_diff", "fmr_diff", "fte_rate_diff", "genuine_score_diff", "fnmr_ratio", "fmr_ratio"]


def forest_figure(key: str, title: str, rows: pd.DataFrame, models: list[str], label_col: str,
                  alpha: float = 0.05, ci_level: float = 0.95, color_index: int = 0) -> Figure:
    """Forest plot: one panel per metric (stacked, each with its own x axis), estimate and CI per model;
    filled markers are significant after the multiple-comparison adjustment. ``color_index``: the
    first model's colour in MODEL_PALETTE (one forest per model keeps each model's colour)."""
    metrics = [m for m in FOREST_ORDER if m in set(rows["metric"])] + \
              [m for m in dict.fromkeys(rows["metric"]) if m not in FOREST_ORDER]
    n_labels = {m: rows.loc[rows["metric"] == m, label_col].nunique() for m in metrics}
    row_px, gap_px, top_px = 24, 56, 16
    height = top_px + sum(n_labels[m] * row_px + gap_px for m in metrics) + 20
    traces, layout_axes, annotations, shapes = [], {}, [], []
    y_cursor = 1.0 - top_px / height
    shown = set()
    for k, metric in enumerate(metrics):
        d = rows[rows["metric"] == metric]
        kind = fmt.metric_kind(metric)
        scale = 100.0 if kind == "rate_diff" else 1.0
        f = fmt.metric_formatter(metric)
        labels = list(dict.fromkeys(d[label_col]))[::-1]
        span = n_labels[metric] * row_px / height
        y1, y0 = y_cursor, y_cursor - span
        y_cursor = y0 - gap_px / height
        suffix = "" if k == 0 else str(k + 1)
        xa = dict(AXIS, anchor=f"y{suffix}", title=dict(text=metric_label(metric) + (" (pp)" if kind == "rate_diff" else ""),
                                                      standoff=4, font=dict(size=11)))
        if kind == "ratio":
            ticks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
            xa.update(type="log", tickvals=ticks, ticktext=[f"{t:g}×" for t in ticks])
        layout_axes[f"xaxis{suffix}"] = xa
        layout_axes[f"yaxis{suffix}"] = dict(AXIS, domain=[max(0.0, y0), y1], anchor=f"x{suffix}", type="category",
                                             categoryorder="array", categoryarray=labels, showgrid=False)
        null = 1.0 if kind == "ratio" else 0.0
        shapes.append(dict(type="line", x0=null, x1=null, y0=0, y1=1, xref=f"x{suffix}", yref=f"y{suffix} domain",
                           line=dict(color="#444", width=1)))
        for i, m in enumerate(models):
            dm = d[d["model"] == m]
            if dm.empty:
                continue
            color = MODEL_PALETTE[(i + color_index) % len(MODEL_PALETTE)]
            sig = (dm["p_adjusted"].fillna(1.0) < alpha).to_numpy()
            text = [f"{f(e)} {fmt.ci(lo, hi, f)}<br>p<sub>adj</sub> {fmt.pvalue(p)}"
                    for e, lo, hi, p in zip(dm["estimate"], dm["ci_lo"], dm["ci_hi"], dm["p_adjusted"])]
            est = dm["estimate"] * scale
            traces.append(dict(
                type="scatter", orientation="h", x=_finite(est), y=dm[label_col].tolist(), mode="markers", name=m,
                legendgroup=m, showlegend=len(models) > 1 and m not in shown, xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                marker=dict(color=[color if s_ else "white" for s_ in sig], size=10, symbol="diamond", line=dict(color=color, width=2)),
                error_x=dict(type="data", symmetric=False, array=_finite((dm["ci_hi"] * scale - est).clip(lower=0)),
                             arrayminus=_finite((est - dm["ci_lo"] * scale).clip(lower=0)), color=color, thickness=1.5, width=4),
                text=text, hovertemplate="%{y}<br>%{text}<extra>" + m + "</extra>"))
            shown.add(m)
    layout = _layout(int(height), scattermode="group", scattergap=0.4, shapes=shapes, annotations=annotations,
                     margin=dict(t=top_px, b=20), **layout_axes)
    return Figure(key, title,
                  f"Paired within-seed contrasts (level minus reference; ratios on log axes) with {ci_level:.0%} CIs. Filled markers: "
                  f"adjusted p < {alpha:g}; open markers: not significant after the multiple-comparison adjustment.",
                  dict(data=traces, layout=layout))


def dose_response_figure(model: str, curves: pd.DataFrame, groups: list[str], attrs: list[str], source_note: str,
                         ci_level: float = 0.95) -> Figure:
    """Mean genuine score against edit level per group, with CI bands."""
    colors = group_colors(groups)
    traces = []
    for j, a in enumerate(attrs):
        for g in groups:
            d = curves[(curves["edit_attr"] == a) & (curves["group"] == g)].sort_values("edit_level")
            if d.empty:
                continue
            label = fmt.group_label(g)
            x = d["edit_level"].tolist()
            traces.append(dict(type="scatter", x=x + x[::-1], y=_finite(d["ci_hi"].tolist() + d["ci_lo"].tolist()[::-1]),
                               fill="toself", mode="lines", fillcolor=_rgba(colors[g], 0.15), line=dict(width=0),
                               hoverinfo="skip", showlegend=False, legendgroup=g, **_axes(j)))
            traces.append(dict(type="scatter", x=x, y=_finite(d["mean_score"]), mode="lines+markers", name=label, legendgroup=g,
                               showlegend=j == 0, line=dict(color=colors[g], width=2), marker=dict(size=6),
                               hovertemplate=f"{a} %{{x:+g}}<br>mean genuine score %{{y:.3f}}<extra>{label}</extra>", **_axes(j)))
    layout = _attr_panels(attrs, 340, "mean genuine score")
    return Figure(f"dose-{model}", f"Dose–response · {model}",
                  f"Mean similarity of each prototype to its edited version, by edit level and group; bands are "
                  f"{ci_level:.0%} CIs. " + source_note, dict(data=traces, layout=layout))


def fmr_matrix_figure(model: str, cells: pd.DataFrame, groups: list[str], target_fmr: float,
                      ci_level: float = 0.95) -> Figure:
    """Cross-group impostor FMR of one model at one target FMR as a heatmap (log colour scale, counts in hover).

    ``cells``: the model's ``results/fmr_matrix.parquet`` rows with ``kind == "impostor"`` at ``target_fmr``
    (unordered pairs; drawn symmetric). A cell without a false match is drawn at half a false match
    (``0.5 / impostor pairs``) so the log scale can show it; the hover gives the true count.
    """
    labels = [fmt.group_label(g) for g in groups]
    G = len(groups)
    z = [[None] * G for _ in range(G)]
    text = [[""] * G for _ in range(G)]
    for r in cells.itertuples():
        if r.group_a not in groups or r.group_b not in groups or not r.n_impostor:
            continue
        i, j = groups.index(r.group_a), groups.index(r.group_b)
        shown = max(float(r.fmr), 0.5 / float(r.n_impostor))
        hover = (f"FMR {fmt.pct(r.fmr)} [{fmt.pct(r.fmr_lo)}, {fmt.pct(r.fmr_hi)}]<br>"
                 f"{int(r.n_false_match):,} false matches / {int(r.n_impostor):,} impostor pairs"
                 + ("<br>(within the group: the per-group FMR)" if i == j else "<br>(different seeds, same edit condition)"))
        for a, b in ((i, j), (j, i)):
            z[a][b] = math.log10(shown)
            text[a][b] = hover
    finite = [v for row in z for v in row if v is not None]
    lo, hi = (min(finite), max(finite)) if finite else (-4.0, 0.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    ticks = [t for t in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0) if lo - 1e-9 <= math.log10(t) <= hi + 1e-9] or [10 ** lo]
    trace = dict(type="heatmap", z=z, x=labels, y=labels, text=text, zmin=lo, zmax=hi, colorscale="Viridis",
                 hovertemplate="%{y} × %{x}<br>%{text}<extra></extra>", xgap=2, ygap=2,
                 colorbar=dict(title=dict(text="FMR"), tickvals=[math.log10(t) for t in ticks],
                               ticktext=[fmt.pct(t) for t in ticks]))
    layout = _layout(120 + 60 * G, xaxis=dict(AXIS, showgrid=False, title=dict(text="group of the second face")),
                     yaxis=dict(AXIS, showgrid=False, autorange="reversed", title=dict(text="group of the first face")))
    return Figure(f"fmr-matrix-{model}", f"Cross-group impostor FMR · {model} · target FMR {fmt.pct(target_fmr)}",
                  "False match rate of impostor pairs (two different seeds in the same edit condition) whose faces come "
                  "from the row's and the column's group, at the model's global threshold (log colour scale; hover for "
                  f"the counts and {ci_level:.0%} CI). The diagonal is the per-group FMR. A cell with no false match is "
                  "coloured as half a false match.", dict(data=[trace], layout=layout))


# ---------------------------------------------------------------------------------------------
# DET curves with bootstrap bands, synthetic versus real


def det_band_figure(model: str, bands: pd.DataFrame, groups: list[str], target_fmr: float,
                    ci_level: float = 0.95) -> Optional[Figure]:
    """DET curves with bootstrap bands, one small panel per group on shared log axes, from the model's
    ``results/det_bands.parquet`` rows; each panel also shows the other groups' curves in grey so the
    groups can be compared without twelve overlaid bands."""
    present = [g for g in groups if (bands["group"] == g).any()]
    if not present:
        return None
    colors = group_colors(groups)
    positive = bands[["fmr_grid", "fnmr", "fnmr_lo"]].to_numpy(dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    lo = max(1e-6, 10 ** math.floor(math.log10(max(min(positive.min() if len(positive) else 1e-3, target_fmr), 1e-6))))
    layout, refs = _group_grid(len(present), 3, 220)
    ticks = [t for t in [1e-6, 1e-5] + LOG_TICKS if t >= lo]
    for i in range(len(present)):
        suffix = "" if i == 0 else str(i + 1)
        # no 100% tick on x: it would run into the next panel's first label
        layout[f"xaxis{suffix}"].update(type="log", range=[math.log10(lo), 0], tickvals=ticks[:-1],
                                        ticktext=[fmt.pct(t) for t in ticks[:-1]])
        layout[f"yaxis{suffix}"].update(type="log", range=[math.log10(lo), 0], tickvals=ticks,
                                        ticktext=[fmt.pct(t) for t in ticks])
    layout["xaxis"]["title"] = dict(text="FMR")
    layout["yaxis"]["title"] = dict(text="FNMR")
    traces, shapes, annotations = [], [], []
    for i, g in enumerate(present):
        ax = refs[i]
        label = fmt.group_label(g)
        for other in present:
            if other == g:
                continue
            d = bands[bands["group"] == other].sort_values("fmr_grid")
            d = d[d["fnmr"] > 0]
            traces.append(dict(type="scatter", x=d["fmr_grid"].to_numpy(), y=d["fnmr"].to_numpy(), mode="lines",
                               line=dict(color="#c8c8c8", width=1), showlegend=False, hoverinfo="skip",
                               xaxis=ax["x"], yaxis=ax["y"]))
        d = bands[bands["group"] == g].sort_values("fmr_grid")
        d = d[(d["fnmr"] > 0) & (d["fmr_grid"] > 0)]
        x = d["fmr_grid"].tolist()
        # a band's lower end at 0 FNMR cannot be drawn on a log axis: clip it to the axis floor
        lo_y = np.maximum(d["fnmr_lo"].to_numpy(dtype=float), lo)
        traces.append(dict(type="scatter", x=x + x[::-1], y=_finite(list(d["fnmr_hi"]) + list(lo_y[::-1])), fill="toself",
                           mode="lines", fillcolor=_rgba(colors[g], 0.22), line=dict(width=0), hoverinfo="skip",
                           showlegend=False, xaxis=ax["x"], yaxis=ax["y"]))
        text = [f"{fmt.pct(a)} [{fmt.pct(b)}, {fmt.pct(c)}]" for a, b, c in zip(d["fnmr"], d["fnmr_lo"], d["fnmr_hi"])]
        traces.append(dict(type="scatter", x=x, y=_finite(d["fnmr"]), mode="lines+markers", name=label, legendgroup=g,
                           showlegend=False, line=dict(color=colors[g], width=2), marker=dict(size=4), text=text,
                           hovertemplate=f"FMR %{{x:.4%}}<br>FNMR %{{text}}<extra>{label}</extra>",
                           xaxis=ax["x"], yaxis=ax["y"]))
        shapes.append(dict(type="line", x0=target_fmr, x1=target_fmr, y0=0, y1=1, xref=ax["x"], yref=f"{ax['y']} domain",
                           line=dict(color="#777", dash="dash", width=1)))
        annotations.append(dict(text=label, x=ax["xc"], y=ax["ytop"], xref="paper", yref="paper", xanchor="center",
                                yanchor="bottom", showarrow=False, font=dict(size=12)))
    layout.update(shapes=shapes, annotations=annotations, showlegend=False)
    n_boot = int(bands["n_boot"].iloc[0]) if "n_boot" in bands.columns and len(bands) else 0
    return Figure(f"det-bands-{model}", f"DET curves with bootstrap bands · {model}",
                  "One panel per group on shared log axes: FNMR at each FMR when the threshold is set at that FMR on the "
                  f"group's own impostors, with a pointwise {ci_level:.0%} band from {n_boot} seed-cluster bootstrap "
                  "replicates (the threshold re-set in each); grey: the other groups' curves; dashed: the target FMR "
                  f"{fmt.pct(target_fmr)}. The grid stops at one impostor pair of the group.",
                  dict(data=traces, layout=layout))


DATA_STYLES = {"synthetic": dict(color="#0072B2", dash="solid"), "real": dict(color="#D55E00", dash="dash")}


def synthetic_vs_real_figure(model: str, hist: pd.DataFrame, thresholds: list[tuple[str, float]],
                             calibration_name: str) -> Optional[Figure]:
    """The audit's and the calibration run's score densities side by side: one panel per kind (genuine,
    impostor) with one line per data set, and the operating thresholds as vertical lines."""
    kinds = [k for k in ("genuine", "impostor") if (hist["kind"] == k).any()]
    if not kinds:
        return None
    layout, refs = _group_grid(len(kinds), 2, 200, xaxis=dict(title=dict(text="similarity score")),
                               yaxis=dict(title=dict(text="density")))
    traces, shapes, annotations = [], [], []
    shown: set = set()
    for i, kind in enumerate(kinds):
        ax = refs[i]
        for data in ("synthetic", "real"):
            h = hist[(hist["kind"] == kind) & (hist["data"] == data)].sort_values("bin_lo")
            if h.empty:
                continue
            x = (h["bin_lo"].to_numpy(dtype=float) + h["bin_hi"].to_numpy(dtype=float)) / 2
            n = int(h["count"].sum())
            name = "audit (synthetic faces)" if data == "synthetic" else f"calibration run {calibration_name} (real photos)"
            traces.append(dict(type="scatter", x=np.round(x, 5), y=np.round(h["density"].to_numpy(dtype=float), 5),
                               mode="lines", name=name, legendgroup=data, showlegend=data not in shown,
                               line=dict(width=1.8, shape="hvh", **DATA_STYLES[data]), xaxis=ax["x"], yaxis=ax["y"],
                               hovertemplate=f"score %{{x:.3f}}<br>density %{{y:.2f}}<extra>{data} {kind} (n={n:,})</extra>"))
            shown.add(data)
        for label, t in thresholds:
            if t is None or not np.isfinite(t):
                continue
            shapes.append(dict(type="line", x0=t, x1=t, y0=0, y1=1, xref=ax["x"], yref=f"{ax['y']} domain",
                               line=dict(color="#333", dash="dot", width=1)))
            annotations.append(dict(text=label, x=t, y=1, xref=ax["x"], yref=f"{ax['y']} domain", showarrow=False,
                                    textangle=-90, xanchor="right", yanchor="top", font=dict(size=9, color="#555")))
        annotations.append(dict(text=f"{kind} pairs", x=ax["xc"], y=ax["ytop"], xref="paper", yref="paper",
                                xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=12)))
    layout.update(shapes=shapes, annotations=annotations)
    return Figure(f"synthetic-vs-real-{model}", f"Synthetic versus real score distributions · {model}",
                  "Histogram densities of the audit's comparisons (synthetic faces, pooled over groups and edit conditions) "
                  "and of the calibration run's (real photographs), on common bins; dotted lines: the operating thresholds "
                  "of the table. Impostor mass right of a threshold is that data set's FMR, genuine mass left of it its FNMR.",
                  dict(data=traces, layout=layout))
