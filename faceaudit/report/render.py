"""Render RUN/report.html (self-contained model card) and RUN/results/summary.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from faceaudit.generate.registry import backend_for
from faceaudit.report import fmt
from faceaudit.report.card import Card, build_card
from faceaudit.report.summary_md import summary_markdown
from faceaudit.report.tables import Table
from faceaudit.run import load_run
from faceaudit.rundir import write_text

TEMPLATES = Path(__file__).parent / "templates"
GRID_PX = 72


def _ratio(x: Optional[float]) -> str:
    return fmt.ratio(x)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.globals.update(pct=fmt.pct, num=fmt.num, signed=fmt.signed, ratio=_ratio)
    env.filters["pct_filter"] = fmt.pct
    return env


def plotly_js() -> str:
    """plotly.js from the installed plotly package (no CDN), safe to put inside a <script> element."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _figure_views(figs: dict) -> dict:
    out, n = {}, 0
    for kind, items in figs.items():
        views = []
        for f in items:
            n += 1
            views.append({"dom_id": f"fig-{n}", "title": f.title, "caption": f.caption, "json": f.to_json(),
                          "height": f.height})
        out[kind] = views
    return out


def _eval_rows(card: Card) -> list[tuple[str, str]]:
    ev, proto = card.evaluation, card.header.protocol
    gen = ev.generation
    rows = [
        ("Generator", gen["generator"]),
        ("Resolution", ev.resolution_text),
        ("Directions file", gen["directions"]),
        *backend_for(proto).card_rows(proto),
        ("Protocol", f"{proto.name} (master seed {proto.seed})"),
        ("Seeds", f"{gen['seeds_kept']} kept of {gen['seeds_requested']} requested; "
                  f"{len({e[0] for e in gen['excluded']})} excluded"),
        ("Faces", f"{ev.n_faces:,} ({len(card.header.groups)} skin levels × (prototype + "
                  f"{sum(len(e.levels) for e in proto.edits)} edits) per seed)"),
        ("Pairs", f"{ev.n_pairs:,} (genuine: prototype vs each of its edits; impostor: different seeds, same group and condition)"),
    ]
    if gen["reach"]:
        rows.append(("Skin search", f"share of requested seeds whose measured ITA reached each bin: {gen['reach']}"))
    rows += [(f"Generator {k}", v) for k, v in gen["generator_meta"] if k not in ("name", "training_data")]
    return rows


@dataclass(frozen=True)
class BaselineComparison:
    """A comparison with a baseline run, computed by the caller
    (:func:`faceaudit.stats.compare.compare_runs`, baseline as run A) and only laid out here."""

    baseline: str  # the baseline run's name
    table: pd.DataFrame  # faceaudit.stats.compare.COMPARE_COLUMNS


def comparison_view(comparison: BaselineComparison) -> dict:
    """The model card's "comparison with the baseline run" table."""
    cmp = comparison.table
    rows = []
    for r in cmp.itertuples():
        ratio = r.change_kind == "ratio"
        show = fmt.ratio if ratio else fmt.num
        what = r.metric + (f" vs {r.reference}" if r.reference else "")
        rows.append([r.model_b if r.model_a == r.model_b else f"{r.model_b} (baseline {r.model_a})", f"{r.target_fmr:g}",
                     what, r.group, show(r.value_a), show(r.value_b), show(r.change),
                     f"[{show(r.ci_lo)}, {show(r.ci_hi)}]" + (" ★" if r.significant else "")])
    table = Table(["model", "target FMR", "metric", "group", "baseline", "this run", "change", "CI"], rows,
                  [False, True, False, False, True, True, True, True])
    return {"baseline": comparison.baseline, "ci_level": float(cmp["ci_level"].iloc[0]) if len(cmp) else 0.95,
            "table": table}


def template_context(card: Card, comparison: Optional[BaselineComparison] = None) -> dict[str, Any]:
    """The template's variables: the card's sections (unchanged) plus layout-only values."""
    return {**card.template_vars(), "eval_rows": _eval_rows(card), "figs": _figure_views(card.results.figures),
            "grid_px": GRID_PX, "comparison": comparison_view(comparison) if comparison is not None else None}


def build_context(run, comparison: Optional[BaselineComparison] = None) -> dict[str, Any]:
    """The template's variables for a run (:func:`faceaudit.run.load_run`)."""
    return template_context(build_card(run), comparison)


def _html(ctx: dict) -> str:
    return _environment().get_template("report.html.j2").render(
        css=(TEMPLATES / "report.css").read_text(), plotly_js=plotly_js(), **ctx)


def render_report(run_root: str | Path, out: str | Path | None = None,
                  comparison: Optional[BaselineComparison] = None) -> Path:
    """Write the model card of a finished run to ``out`` (default ``RUN/report.html``) and
    ``RUN/results/summary.md``; returns the report's path. Both writes are atomic.

    With ``comparison`` (computed by the caller: ``faceaudit.api.report(run, baseline=...)``) the card
    adds a comparison section and is written to ``out`` (default ``RUN/report_vs_<baseline>.html``);
    ``report.html`` and summary.md are left as the report stage wrote them."""
    run = load_run(run_root)
    card = build_card(run)
    html = _html(template_context(card, comparison))
    if comparison is not None:
        path = Path(out) if out is not None else run.root / f"report_vs_{comparison.baseline}.html"
        write_text(path, html)
        return path
    path = Path(out) if out is not None else run.root / "report.html"
    write_text(path, html)
    write_text(run.root / "results" / "summary.md", summary_markdown(card))
    return path
