"""Render RUN/report.html (self-contained model card) and RUN/results/summary.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from faceaudit import __version__
from faceaudit.generate.registry import backend_for
from faceaudit.report import fmt
from faceaudit.report.card import Table, build_card
from faceaudit.report.summary_md import summary_markdown
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


def _eval_rows(card: dict, run_root: Path) -> list[tuple[str, str]]:
    gen, proto = card["generation"], card["protocol"]
    rows = [
        ("Generator", gen["generator"]),
        ("Resolution", card["resolution_text"]),
        ("Directions file", gen["directions"]),
        *backend_for(proto).card_rows(proto),
        ("Protocol", f"{proto.name} (master seed {proto.seed})"),
        ("Seeds", f"{gen['seeds_kept']} kept of {gen['seeds_requested']} requested; "
                  f"{len({e[0] for e in gen['excluded']})} excluded"),
        ("Faces", f"{card['n_faces']:,} ({len(card['groups'])} skin levels × (prototype + "
                  f"{sum(len(e.levels) for e in proto.edits)} edits) per seed)"),
        ("Pairs", f"{card['n_pairs']:,} (genuine: prototype vs each of its edits; impostor: different seeds, same group and condition)"),
    ]
    if gen["reach"]:
        rows.append(("Skin search", f"share of requested seeds whose measured ITA reached each bin: {gen['reach']}"))
    rows += [(f"Generator {k}", v) for k, v in gen["generator_meta"] if k not in ("name", "training_data")]
    return rows


def build_context(run) -> dict[str, Any]:
    card = build_card(run)
    res = card["resolution"]
    card["resolution_text"] = f"{res[0]}×{res[1]} px" if res else "unknown resolution (images unreadable)"
    card["eval_rows"] = _eval_rows(card, run.root)
    card["excluded_table"] = Table(["seed", "reason"], [list(e) for e in card["generation"]["excluded"]])
    card["pair_table"] = Table(["group", "genuine pairs", "impostor pairs"],
                               [[r["group"], f"{r['genuine']:,}", f"{r['impostor']:,}"] for r in card["pair_counts"]],
                               [False, True, True])
    card["figs"] = _figure_views(card["figures"])
    card["max_fte"] = max((m.max_fte for m in card["model_summaries"]), default=0.0)
    card["grid_px"] = GRID_PX
    card["run_name"] = Path(run.root).resolve().name
    card["faceaudit_version"] = __version__
    card["comparison"] = None  # set by render_report(baseline=...)
    return card


def comparison_view(run_root: str | Path, baseline: str | Path, baseline_model: Optional[str] = None) -> dict:
    """The model card's "comparison with the baseline run" table (faceaudit.stats.compare)."""
    from faceaudit.stats.compare import compare_runs

    cmp = compare_runs(baseline, run_root, model_a=baseline_model)
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
    return {"baseline": Path(baseline).resolve().name, "ci_level": float(cmp["ci_level"].iloc[0]) if len(cmp) else 0.95,
            "table": table}


def render_report(run_root: str | Path, out: str | Path | None = None, baseline: str | Path | None = None,
                  baseline_model: Optional[str] = None) -> Path:
    """Write the model card of a finished run to ``out`` (default ``RUN/report.html``) and
    ``RUN/results/summary.md``; returns the report's path. Both writes are atomic.

    With ``baseline`` (a run of the same protocol) the card adds a comparison section and is written
    to ``out`` (default ``RUN/report_vs_<baseline>.html``); ``report.html`` and summary.md are left
    as the report stage wrote them."""
    # Imported here: faceaudit.api imports the pipeline, which imports this package lazily.
    from faceaudit.api import load_run

    run = load_run(run_root)
    ctx = build_context(run)
    if baseline is not None:
        ctx["comparison"] = comparison_view(run.root, baseline, baseline_model)
        path = Path(out) if out is not None else run.root / f"report_vs_{Path(baseline).resolve().name}.html"
        html = _environment().get_template("report.html.j2").render(
            css=(TEMPLATES / "report.css").read_text(), plotly_js=plotly_js(), **ctx)
        write_text(path, html)
        return path
    env = _environment()
    html = env.get_template("report.html.j2").render(
        css=(TEMPLATES / "report.css").read_text(), plotly_js=plotly_js(), **ctx)
    path = Path(out) if out is not None else run.root / "report.html"
    write_text(path, html)
    write_text(run.root / "results" / "summary.md", summary_markdown(ctx))
    return path
