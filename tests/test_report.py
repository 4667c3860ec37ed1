"""The model card (report.html) and summary.md rendered from the synthetic run directory.

Numbers are looked up in the page as the card formats them (``fmt``), taken from the run's own
tables, so a card that drops or mislabels a value fails here.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _synthetic_run as syn
from faceaudit.api import load_run
from faceaudit.core.errors import BadInput
from faceaudit.report import fmt, render_report

SECTIONS = ["model-details", "intended-use", "factors", "metrics", "evaluation-data", "training-data",
            "quantitative-analyses", "ethical-considerations", "caveats"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, synthetic_run_template):
    """(run root, report html) — rendered once for the module's read-only checks."""
    root = Path(shutil.copytree(synthetic_run_template, tmp_path_factory.mktemp("report") / "run"))
    path = render_report(root)
    return root, path.read_text(encoding="utf-8")


def section_text(page: str, section_id: str) -> str:
    m = re.search(rf'<section class="card-section" id="{section_id}">(.*?)</section>', page, re.S)
    assert m, f"section {section_id} missing"
    body = re.sub(r'<script type="application/json".*?</script>', " ", m.group(1), flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", body))


def without_plotly(page: str) -> str:
    """The page minus the inlined plotly.js (its own source mentions URLs it never loads here)."""
    return re.sub(r"<script>\s*/\*\*\s*\* plotly\.js.*?</script>", "", page, count=1, flags=re.S)


# ---------------------------------------------------------------------------------------------
# formatting rules the card relies on


def test_formatting_rules():
    assert fmt.pct(0.1875) == "18.8%"
    assert fmt.pct(0.0456) == "4.56%"
    assert fmt.pct(0.001) == "0.100%"
    assert fmt.pct(0) == "0%"
    assert fmt.pct(float("nan")) == "–"
    assert fmt.pp(0.1875) == "+18.8 pp"
    assert fmt.pp(-0.0312) == "-3.12 pp"
    assert fmt.pvalue(0.0004) == "<0.001"
    assert fmt.pvalue(0.0084) == "0.008"
    assert fmt.with_ci(0.0694, 0.0139, 0.111) == "6.94% [1.39%, 11.1%]"
    assert fmt.level(-2.0) == "-2" and fmt.level(1.0) == "+1"
    assert fmt.cell("fnmr_hi", 0.25) == "25.0%"
    assert fmt.cell("n_genuine", 72.0) == "72"
    assert fmt.is_rate_metric("fnmr") and not fmt.is_rate_metric("mean_genuine_score")


# ---------------------------------------------------------------------------------------------
# self-contained page


def test_report_is_self_contained(rendered):
    root, page = rendered
    assert (root / "report.html").exists()
    # plotly.js inlined exactly once (its banner), and no figure carries its own copy
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1
    rest = without_plotly(page)
    assert rest != page, "plotly.js was not found inline"
    # figures are drawn by the one loader, not by plotly's per-figure inline scripts
    assert rest.count("Plotly.newPlot(") == 1 and "PLOTLYENV" not in rest
    assert "<script src" not in page.replace(" ", "")
    # no resource is fetched from the network: no src/href/url()/@import to http(s) or protocol-relative
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", rest, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//""", rest, re.I)
    assert "@import" not in rest
    assert "http://" not in rest and "https://" not in rest
    assert "mathjax" not in rest.lower().replace("typesetmath", "")
    # images are inlined: at least a full grid (3 groups x 9 conditions) per example seed
    assert rest.count('src="data:image/png;base64,') >= 2 * 3 * 9


def test_figures_are_json_drawn_by_one_loader(rendered):
    _, page = rendered
    divs = re.findall(r'<div class="fa-plot" id="(fig-\d+)"', page)
    data = re.findall(r'<script type="application/json" id="(fig-\d+)-data">', page)
    # per model: DET, score distribution (small multiples), FNMR by condition, dose-response, the primary
    # forest, the exploratory (within-condition) forest and the DET curves with bootstrap bands
    assert len(divs) == 2 * 7
    assert divs == data
    assert len(set(divs)) == len(divs)


def test_figure_specs_are_valid_plotly(synthetic_run):
    from faceaudit.report.render import build_context

    ctx = build_context(load_run(synthetic_run))
    figs = [f for items in ctx["figures"].values() for f in items]
    assert len(figs) == 14
    for f in figs:
        fig = f.to_plotly()  # raises ValueError on a property plotly.js does not know
        assert len(fig.data) > 0, f.key


def test_every_section_present_with_numbers_from_the_run(rendered):
    root, page = rendered
    run = load_run(root)
    texts = {s: section_text(page, s) for s in SECTIONS}
    for s, t in texts.items():
        assert len(t.split()) > 40, f"section {s} is nearly empty"
    # 1. model details from manifest["models"]
    assert "ResNet-29 metric-learning network" in texts["model-details"]
    assert "beta-0.9" in texts["model-details"] and "128" in texts["model-details"]
    # 2. intended use
    assert "verification" in texts["intended-use"]
    # 3. factors: ITA bins of the protocol and the edit levels
    for lv in run.protocol.protected.levels:
        assert f"[{fmt.num(lv.ita_min)}°, {fmt.num(lv.ita_max)}°)" in texts["factors"]
    assert "-2, -1, +1, +2" in texts["factors"]
    # 4. metrics: the thresholds of error_rates and the bootstrap settings
    er = run.error_rates
    for model in syn.MODELS:
        th = er.loc[er["model"] == model, "threshold"].iloc[0]
        assert fmt.num(th, 4) in texts["metrics"]
    assert "200 resamples" in texts["metrics"] and "holm" in texts["metrics"]
    # 5. evaluation data: resolution, directions, seeds, exclusion reason
    ev = texts["evaluation-data"]
    assert "64×64 px" in ev and "directions_synthetic.npz" in ev
    assert "9 kept of 10 requested; 1 excluded" in ev and f"level dark: {syn.EXCLUDED_SEEDS[7]} (12 steps)" in ev
    # manipulation check: verdicts computed from the long table (lighting leaks into ITA in the fixture)
    assert re.search(r"lighting\s+lighting\s+-2: -0.9\d+.*?yes\s+\d+\.\d+°\s+\d+(\.\d+)?%\s+yes", ev, re.S)
    assert "Leakage flagged: lighting → skin ITA" in " ".join(ev.split())
    # 6. training data: documented for alpha, plainly unknown for beta
    assert syn.MODEL_METADATA["alpha"]["training_data"] in texts["training-data"]
    assert re.search(r"beta\s*:\s*unknown", texts["training-data"])
    # 7. quantitative: unitary rates with CIs, a contrast, fairness and FTE numbers
    q = texts["quantitative-analyses"]
    for _, r in er[(er["edit_attr"] == "all") & (er["group"] != "all")].iterrows():
        assert fmt.with_ci(r["fnmr"], r["fnmr_lo"], r["fnmr_hi"]) in q
        assert fmt.with_ci(r["fmr"], r["fmr_lo"], r["fmr_hi"]) in q
    assert "+18.8 pp [+6.25 pp, +31.2 pp]" in q and "0.008" in q
    assert "-0.0731 [-0.101, -0.0455]" in q
    assert "2.50× [1.20×, 9.50×]" in q  # a ratio contrast reads as a ratio
    assert "lighting -2" in q and "+22.2 pp [0 pp, +55.6 pp]" in q  # a contrast within one condition
    assert "3.42× [1.50×, 9.80×]" in q and "+4.17 pp [+1.39 pp, +12.5 pp]" in q and "0.271 [0.120, 0.550]" in q
    assert "skin=dark:abs_level" in q and "-0.0816 [-0.142, -0.0208]" in q  # mixed-model terms
    assert "1 / 81" in q  # beta's single failure to enrol, in the dark group
    # intersectional cells: FNMR of one specific cell
    cell = er[(er["model"] == "alpha") & (er["group"] == "skin=dark") & (er["edit_attr"] == "lighting") & (er["edit_level"] == -2)].iloc[0]
    assert fmt.with_ci(cell["fnmr"], cell["fnmr_lo"], cell["fnmr_hi"]) in q
    # 8. ethics
    assert "Skin tone is not race" in texts["ethical-considerations"]
    # 9. caveats quote this run's numbers
    cav = texts["caveats"]
    assert "64×64 px" in cav and "8 genuine pairs" in cav and "lighting → skin ITA" in cav
    shift = max(_lighting_ita_shifts(run.faces).values(), key=abs)
    assert f"{fmt.signed(shift)}°" in cav


def _lighting_ita_shifts(faces: pd.DataFrame) -> dict:
    protos = faces[faces["edit_attr"] == "none"].set_index(["seed", "group"])["measured_skin_ita"]
    out = {}
    for lv, b in faces[faces["edit_attr"] == "lighting"].groupby("edit_level"):
        out[lv] = float(np.mean(b["measured_skin_ita"].to_numpy() - protos.loc[list(zip(b["seed"], b["group"]))].to_numpy()))
    return out


def header_text(page: str) -> str:
    header = html_lib.unescape(re.sub(r"<[^>]+>", " ", page.split('<nav class="toc">')[0].split("<body>")[1]))
    return " ".join(header.split())


def test_header_key_numbers(rendered):
    _, page = rendered
    header = header_text(page)
    # FMR and FNMR contrasts side by side per model (no verdict colour), at the target FMR
    assert "At target FMR 1.00%" in header
    assert "dark vs light – +18.8 pp [+6.25 pp, +31.2 pp] counts not computed · p adj 0.008" in header
    assert "dark vs light – +9.38 pp [-1.25 pp, +20.0 pp] counts not computed · p adj 0.243" in header
    # without summary.json's primary_family the tile says so instead of counting over another family
    assert "Significant primary contrasts – not computed: summary.json has no primary_family" in header
    assert "3.42× dark / light · [1.50×, 9.80×] · smoothing not recorded" in header and "GARBE 0.271" in header
    assert 'class="verdict sig"' not in page and 'class="verdict nosig"' not in page


def test_headline_rates_show_counts(rendered):
    root, page = rendered
    header = header_text(page)
    er = load_run(root).error_rates
    for _, r in er[(er["edit_attr"] == "all") & (er["group"] != "all")].iterrows():
        assert f"{fmt.pct(r['fmr'])} ({int(r['n_false_match'])}/{int(r['n_impostor']):,})" in header
        assert f"{fmt.pct(r['fnmr'])} ({int(r['n_false_non_match'])}/{int(r['n_genuine']):,})" in header
    # and in section 7.1, next to the CI
    q = section_text(page, "quantitative-analyses")
    r = er[(er["edit_attr"] == "all") & (er["group"] == "skin=dark") & (er["model"] == "alpha")].iloc[0]
    assert f"{fmt.with_ci(r['fnmr'], r['fnmr_lo'], r['fnmr_hi'])} ({int(r['n_false_non_match'])}/{int(r['n_genuine'])})" in q


def test_headline_with_the_primary_family(synthetic_run):
    """With the analysis's family, counts, reportability and smoothing (added by tests/_claims_columns.py)."""
    from _claims_columns import RATIO_SMOOTHING, add_claims_columns

    family = add_claims_columns(synthetic_run)
    page = render_report(synthetic_run).read_text()
    header = header_text(page)
    run = load_run(synthetic_run)
    # the tile's denominator is the primary family's size, with its method
    assert f"{family['n_significant']} of {family['size']} primary contrasts, Holm" in header
    c = run.contrasts
    prim = c[(c["family"] == "primary") & (c["metric"] == "fnmr_diff")]
    for _, r in prim.iterrows():
        counts = f"{int(r['events'])}/{int(r['n']):,} vs {int(r['events_ref'])}/{int(r['n_ref']):,}"
        assert f"{fmt.pp(r['estimate'])} {fmt.ci(r['ci_lo'], r['ci_hi'], fmt.pp)} {counts}" in header
    # exploratory rows (within one edit condition) are not on the first screen
    assert "lighting -2 ·" not in header
    # a ratio on fewer than 10 events in a group is no headline
    f = pd.read_parquet(synthetic_run / "results" / "fairness.parquet")
    unrep = f[(f["metric"] == "fnmr_max_min_ratio") & ~f["reportable"].astype(bool)]
    assert len(unrep)
    for _, r in unrep.iterrows():
        assert f"FNMR max / min — too few events (n={int(r['n_events_min'])} events in the smallest group" in header
        assert f"{fmt.ratio(r['estimate'])} {fmt.ci(r['ci_lo'], r['ci_hi'], fmt.ratio)}" not in header
    q = section_text(page, "quantitative-analyses")
    assert f"smoothing: {RATIO_SMOOTHING}" in q and "too few events (n=" in q


def test_headline_targets_with_enough_impostor_pairs(synthetic_run):
    """A target FMR is shown only where every group has >= 10/target impostor pairs; the card says why not."""
    path = synthetic_run / "results" / "error_rates.parquet"
    er = pd.read_parquet(path)
    big = er[np.isclose(er["target_fmr"], syn.TARGET_FMR)].copy()
    big["target_fmr"] = 0.1  # 10/0.1 = 100 impostor pairs per group: met
    small = er[np.isclose(er["target_fmr"], syn.TARGET_FMR)].copy()
    small["target_fmr"] = 1e-4  # 100,000 per group: not met
    pd.concat([er, big, small], ignore_index=True).to_parquet(path)
    header = header_text(render_report(synthetic_run).read_text())
    assert "At target FMR 10.0%" in header
    assert "At target FMR 0.0100%" not in header and "At target FMR 1.00%" not in header
    n_min = int(er.loc[(er["edit_attr"] == "all") & (er["group"] != "all") & (er["model"] == "alpha"), "n_impostor"].min())
    assert f"FMR 0.0100% not shown: it needs ≥ 100,000 impostor pairs per group (10 expected false matches)" in header
    assert f"has {n_min}" in header


def test_headline_colours_only_against_a_policy(synthetic_run):
    page = render_report(synthetic_run).read_text()
    head = page.split('<nav class="toc">')[0]
    assert not re.search(r'class="num (pass|fail|inconclusive)"', head)
    assert "No gate policy recorded for this run" in header_text(page)
    checks = [{"metric": "fnmr", "model": "alpha", "target_fmr": syn.TARGET_FMR, "group": "skin=dark", "decision": "fail"},
              {"metric": "fnmr", "model": "alpha", "target_fmr": syn.TARGET_FMR, "group": "skin=light", "decision": "pass"}]
    (synthetic_run / "results" / "gate.json").write_text(json.dumps({"policy": "release", "checks": checks}))
    page = render_report(synthetic_run).read_text()
    head = page.split('<nav class="toc">')[0]
    assert len(re.findall(r'class="num fail"', head)) == 1 and len(re.findall(r'class="num pass"', head)) == 1
    assert "decisions of the gate policy release" in header_text(page)


def test_fte_tile_once_per_detector(synthetic_run):
    path = synthetic_run / "manifest.json"
    manifest = json.loads(path.read_text())
    for m in syn.MODELS:
        manifest["models"][m]["alignment"] = "YuNet 5 landmarks -> template"
    path.write_text(json.dumps(manifest))
    header = header_text(render_report(synthetic_run).read_text())
    assert header.count("Failure to enrol · detector") == 1
    assert "Measures the face detector YuNet shared by alpha, beta, not the recognisers" in header


def test_ordering_discussion_when_the_reference_has_the_worst_fmr(synthetic_run):
    page = render_report(synthetic_run).read_text()
    assert "NIST" not in header_text(page)  # the fixture's worst FMR group is not light for both models
    path = synthetic_run / "results" / "error_rates.parquet"
    er = pd.read_parquet(path)
    er.loc[er["group"] == "skin=light", "fmr"] = 0.05
    er.to_parquet(path)
    header = header_text(render_report(synthetic_run).read_text())
    assert "the light skin level, the reference and lightest level, has the highest FMR" in header
    assert "for every model: alpha (light), beta (light)" in header
    assert "FRVT Part 3" in header and "caveat of the synthetic setting" in header
    assert "opposite of NIST FRVT Part 3 (2019)" in (synthetic_run / "results" / "summary.md").read_text()


# ---------------------------------------------------------------------------------------------
# bugs of issue 18 (each fails on the card before the fix)


def test_intersectional_cells_show_their_own_counts(rendered):
    """7.2 showed one group's pair count for the whole row; each cell now carries its own counts."""
    root, page = rendered
    q = " ".join(section_text(page, "quantitative-analyses").split())
    er = load_run(root).error_rates
    cells = er[(er["model"] == "beta") & ~er["edit_attr"].isin(["all", "none"]) & (er["group"] != "all")]
    assert cells.groupby(["edit_attr", "edit_level"])["n_genuine"].nunique().max() > 1  # cells of a row differ
    for _, r in cells.iterrows():
        assert f"{fmt.with_ci(r['fnmr'], r['fnmr_lo'], r['fnmr_hi'])} ({int(r['n_false_non_match'])}/{int(r['n_genuine'])})" in q
    assert "pairs per group (gen / imp)" not in q


def test_unitary_heading_names_the_protected_attributes(rendered):
    _, page = rendered
    q = section_text(page, "quantitative-analyses")
    assert "7.1 Unitary: per group (skin tone)" in q


def test_unitary_heading_of_crossed_attributes():
    from faceaudit.report.card import protected_names
    from faceaudit.protocol import Protocol

    p = Protocol.model_validate({"name": "x", "n_seeds": 4, "edits": [],
                                 "protected": [{"attribute": "skin_tone"}, {"attribute": "gender"}]})
    assert protected_names(p) == "skin tone × gender"


def test_ci_method_is_read_from_the_results(rendered, synthetic_run):
    """The card printed "percentile intervals from a seed bootstrap" for every CI, whatever the analysis did."""
    _, page = rendered
    assert "percentile intervals from a bootstrap" not in page
    method = "seed-cluster bootstrap, percentile; fmr: dyadic-robust (seed-pair) variance, normal, logit scale"
    path = synthetic_run / "results" / "summary.json"
    summary = json.loads(path.read_text())
    summary["ci_method"] = method
    path.write_text(json.dumps(summary))
    page = render_report(synthetic_run).read_text()
    assert method in " ".join(section_text(page, "metrics").split())
    assert method in " ".join(section_text(page, "quantitative-analyses").split())
    md = (synthetic_run / "results" / "summary.md").read_text()
    assert method in md and "CIs from a seed bootstrap" not in md


def test_leakage_table_is_read_when_present(synthetic_run):
    from _claims_columns import add_claims_columns

    add_claims_columns(synthetic_run)
    path = synthetic_run / "results" / "leakage.parquet"
    leak = pd.read_parquet(path)
    leak.loc[leak["edit_attr"] == "yaw", "share"] = 0.4321  # a share the card could not have computed
    leak.to_parquet(path)
    ev = " ".join(section_text(render_report(synthetic_run).read_text(), "evaluation-data").split())
    assert "43.2%" in ev and "results/leakage.parquet" in ev
    assert "yaw → skin ITA" in ev  # 43% > 25%: flagged from the analysis's share


def test_skin_gap_is_between_skin_levels_not_cells():
    from faceaudit.report.evaluation import _skin_gap

    rows = []
    for skin, ita in (("light", 50.0), ("intermediate", 30.0), ("dark", 5.0)):
        for gender, d in (("female", 0.0), ("male", 1.9)):
            rows.append({"group": f"skin={skin}|gender={gender}", "skin_tone": skin, "edit_attr": "none",
                         "measured_skin_ita": ita + d})
    assert _skin_gap(pd.DataFrame(rows)) == pytest.approx(20.0)


def test_summary_md(rendered):
    root, _ = rendered
    md = (root / "results" / "summary.md").read_text()
    assert md.startswith("## faceaudit: synthetic")
    assert "### alpha" in md and "### beta" in md
    assert "| group | target FMR |" in md
    assert "+18.8 pp [+6.25 pp, +31.2 pp]" in md
    assert "**Caveats:**" in md and "leakage flagged: lighting → skin ITA" in md


def test_rendering_is_deterministic(rendered, tmp_path):
    root, page = rendered
    again = render_report(root, out=tmp_path / "again.html").read_text(encoding="utf-8")
    assert again == page


# ---------------------------------------------------------------------------------------------
# optional vs required tables


def test_optional_tables_absent_say_not_computed(synthetic_run):
    res = synthetic_run / "results"
    for name in ["contrasts.parquet", "dose_response.parquet", "manipulation_check.parquet", "fairness.parquet",
                 "generation.json", "summary.json"]:
        (res / name).unlink()
    page = render_report(synthetic_run).read_text()
    q = section_text(page, "quantitative-analyses")
    assert "Not computed: paired contrasts" in q
    assert "Not computed: fairness summaries" in q
    # the card computes no statistic of its own: without the analysis's per-level means it says so
    assert "Not computed: per-level mean genuine scores" in q
    assert "Computed by the report" not in q
    assert "Not computed: the manipulation check" in section_text(page, "evaluation-data")
    assert "Not assessed" in section_text(page, "caveats")
    md = (res / "summary.md").read_text()
    assert "Contrasts: not computed." in md


def test_intersectional_cells_without_per_condition_rows_say_not_computed(synthetic_run):
    """The per-condition cells come from the analysis's rows only (at the protocol's ci_level, from the
    run's seed bootstrap); without them the card says so instead of computing its own."""
    path = synthetic_run / "results" / "error_rates.parquet"
    er = pd.read_parquet(path)
    er[er["edit_attr"] == "all"].drop(columns=["edit_attr", "edit_level", "condition"]).to_parquet(path)
    page = render_report(synthetic_run).read_text()
    q = " ".join(section_text(page, "quantitative-analyses").split())
    assert q.count("Not computed: results/error_rates.parquet has no rows within edit conditions") == len(syn.MODELS)
    assert "computed by the report from the scores" not in q
    # the FNMR of the alpha/dark/lighting -2 cell is nowhere on the card
    run = load_run(synthetic_run)
    sp = run.scored_pairs("alpha")
    th = er.loc[er["model"] == "alpha", "threshold"].iloc[0]
    cell = sp[(sp["kind"] == "genuine") & (sp["group"] == "skin=dark") & (sp["edit_attr"] == "lighting") & (sp["edit_level"] == -2)]
    section = q[q.index("7.2 Intersectional"):q.index("7.3 Contrasts")]
    assert fmt.pct((cell["score"] < th).mean()) + " [" not in section


def test_missing_error_rates_is_bad_input(synthetic_run):
    (synthetic_run / "results" / "error_rates.parquet").unlink()
    with pytest.raises(BadInput, match="error_rates.parquet: missing; run the `analyze` stage"):
        render_report(synthetic_run)
    assert not (synthetic_run / "report.html").exists()


def test_malformed_error_rates_is_bad_input(synthetic_run):
    path = synthetic_run / "results" / "error_rates.parquet"
    pd.read_parquet(path).drop(columns=["fnmr_hi"]).to_parquet(path)
    with pytest.raises(BadInput, match=r"error_rates.parquet: missing columns \['fnmr_hi'\]"):
        render_report(synthetic_run)


def test_missing_scores_is_bad_input(synthetic_run):
    shutil.rmtree(synthetic_run / "scores")
    with pytest.raises(BadInput, match="run the `score` stage"):
        render_report(synthetic_run)


def test_failed_render_leaves_previous_report(synthetic_run):
    first = render_report(synthetic_run).read_text()
    (synthetic_run / "pairs.parquet").unlink()
    with pytest.raises(BadInput):
        render_report(synthetic_run)
    assert (synthetic_run / "report.html").read_text() == first


# ---------------------------------------------------------------------------------------------
# load_run


def test_load_run_tables(synthetic_run):
    run = load_run(synthetic_run)
    assert run.models == list(syn.MODELS)
    assert run.protocol.name == "synthetic"
    assert set(run.scores) == set(syn.MODELS)
    assert {"pair_id", "score", "status"} <= set(run.scores["beta"].columns)
    st = run.embeddings_status
    assert list(st.columns) == ["model", "face_id", "status"]
    assert st.loc[st["status"] == "fte", "face_id"].tolist() == [syn.FTE_FACE]
    assert run.error_rates is not None and run.contrasts is not None and run.dose_response is not None
    assert run.summary["target_fmr"] == syn.TARGET_FMR
    assert run.generation["n_seeds_requested"] == syn.N_SEEDS_REQUESTED
    assert "fairness" in run.result_names
    sp = run.scored_pairs("alpha")
    assert len(sp) == len(run.pairs) and {"kind", "group", "score"} <= set(sp.columns)


def test_load_run_optional_results_are_none(synthetic_run):
    shutil.rmtree(synthetic_run / "results")
    run = load_run(synthetic_run)
    assert run.error_rates is None and run.contrasts is None and run.summary is None and run.generation is None


def test_load_run_rejects_non_run(tmp_path):
    with pytest.raises(BadInput, match="not a run directory"):
        load_run(tmp_path)
    (tmp_path / "protocol.yaml").write_text("name: x\nn_seeds: 1\nedits: []\n")
    with pytest.raises(BadInput, match="n_seeds"):
        load_run(tmp_path)


def test_report_of_the_analysis_stage_output(synthetic_run):
    """The real analyze stage's tables (roc, score_hist, mixed-model rows, ...) render into a full card."""
    import warnings

    from faceaudit.stats import analyze

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about the tiny synthetic design
        analyze.analyze_run(synthetic_run)
    page = render_report(synthetic_run).read_text()
    run = load_run(synthetic_run)
    q = section_text(page, "quantitative-analyses")
    er = run.error_rates
    for _, r in er[(er["edit_attr"] == "all") & (er["group"] != "all")].iterrows():
        assert fmt.with_ci(r["fnmr"], r["fnmr_lo"], r["fnmr_hi"]) in q
    c = run.contrasts
    r = c[(c["model"] == "alpha") & (c["metric"] == "fnmr_diff") & (c["condition"] == "all") & (c["level"] == "dark")].iloc[0]
    assert f"{fmt.pp(r['estimate'])} {fmt.ci(r['ci_lo'], r['ci_hi'], fmt.pp)}" in q
    f = pd.read_parquet(synthetic_run / "results" / "fairness.parquet")
    g = f[(f["model"] == "beta") & (f["metric"] == "garbe")].iloc[0]
    assert fmt.num(g["estimate"]) in q
    assert "Other result tables" not in q  # roc and score_hist are drawn, not listed
    assert len(re.findall(r'<div class="fa-plot"', page)) == 14
