"""`faceaudit compare` and the baseline gate on real runs: the quick protocol through SFace, against
itself re-run, against a copy with changes planted in its scores, and against SFace with noise
planted on one group's embeddings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from faceaudit.cli import app

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "protocols" / "policies" / "baseline.yaml"


def _rerun(quick_run, dest: Path, model) -> Path:
    """A second run of the quick protocol (same faces and pairs) with ``model`` embedded and scored anew."""
    from faceaudit import api

    run = Path(shutil.copytree(quick_run, dest))
    for sub in ("embeddings", "scores", "results"):
        shutil.rmtree(run / sub, ignore_errors=True)
    api.embed(run, progress=False, models=[model])
    api.score(run, models=[model])
    return run


@pytest.fixture(scope="module")
def runs(quick_run, tmp_path_factory):
    from faceaudit.models.noisy import NoisyRecognizer
    from faceaudit.models.registry import load_model

    base = tmp_path_factory.mktemp("compare")
    sface = load_model("sface", device="cpu")
    same = _rerun(quick_run, base / "same", sface)
    # planted: SD 0.7 per dimension on the dark group's embeddings (SFace's own per-dimension SD is ~1)
    noisy = _rerun(quick_run, base / "noisy", NoisyRecognizer(sface, sigma=0.7, groups={"skin=dark"}, seed=1))
    return quick_run, same, noisy


def _planted_copy(run: Path, dest: Path, dark_drop: float, light_roll: int) -> Path:
    """A copy of ``run`` whose SFace scores differ in two known ways: the dark group's genuine scores are
    ``dark_drop`` lower (a planted rise of its FNMR), and the light group's genuine scores are moved round
    ``light_roll`` places among its own genuine pairs (the same scores on other seeds: its FNMR is
    exactly the same, but each seed's misses change, so its change has a real, non-zero-width CI).
    Impostor scores are untouched, so the threshold does not move."""
    from faceaudit.rundir import write_table

    copy = Path(shutil.copytree(run, dest))
    pairs = pd.read_parquet(copy / "pairs.parquet")
    scores = pd.read_parquet(copy / "scores" / "sface.parquet")
    info = scores[["pair_id", "status"]].merge(pairs[["pair_id", "kind", "group"]], on="pair_id", how="left")
    genuine_ok = (info["kind"] == "genuine") & (info["status"] == "ok")
    dark = np.flatnonzero(genuine_ok & (info["group"] == "skin=dark"))
    light = np.flatnonzero(genuine_ok & (info["group"] == "skin=light"))
    col = scores.columns.get_loc("score")
    scores.iloc[dark, col] = scores.iloc[dark, col] - dark_drop
    scores.iloc[light, col] = np.roll(scores.iloc[light, col].to_numpy(), light_roll)
    write_table(copy / "scores" / "sface.parquet", scores)
    return copy


def test_a_planted_change_is_found_and_an_unchanged_rate_keeps_a_ci_around_zero(runs, tmp_path):
    from faceaudit.stats.compare import compare_runs

    baseline, same, _ = runs
    planted = _planted_copy(same, tmp_path / "planted", dark_drop=0.1, light_roll=16)
    table = compare_runs(baseline, planted)
    assert set(table["model_a"]) == {"sface"} and set(table["model_b"]) == {"sface"}
    assert set(table["metric"]) == {"fnmr", "fmr", "fnmr_diff", "fmr_diff", "fnmr_ratio", "fmr_ratio", "fte_rate"}
    rows = table.set_index(["metric", "group"])

    # the planted change: dark FNMR up (0.2269 -> 0.3193 on the quick run since the face-mesh skin mask
    # changed its placement; 0.1732 -> 0.3071 before), its CI well above 0
    dark = rows.loc[("fnmr", "skin=dark")]
    assert dark["change"] > 0.08 and dark["ci_lo"] > 0 and dark["significant"]
    assert rows.loc[("fnmr_diff", "skin=dark"), "ci_lo"] > 0 and rows.loc[("fnmr_diff", "skin=dark"), "significant"]

    # the unchanged rate: light FNMR is exactly the same, and its CI is a real interval around 0
    light = rows.loc[("fnmr", "skin=light")]
    assert light["value_a"] == light["value_b"] and light["change"] == 0
    assert light["ci_lo"] < -0.01 and light["ci_hi"] > 0.01 and not light["significant"]
    # what nothing touched: intermediate FNMR and every FMR (impostor scores and threshold unchanged)
    untouched = table[((table["metric"] == "fnmr") & (table["group"] == "skin=intermediate"))
                      | (table["metric"] == "fmr")]
    assert len(untouched) == 5 and (untouched[["change", "ci_lo", "ci_hi"]] == 0).all().all()
    assert not untouched["significant"].any()
    # the side-by-side values are each run's own analysis: A's FNMR per group is the run's error_rates
    rates = pd.read_parquet(Path(baseline) / "results" / "error_rates.parquet")
    rates = rates[(rates["model"] == "sface") & (rates["edit_attr"] == "all")].set_index("group")
    fnmr = table[table["metric"] == "fnmr"].set_index("group")
    assert np.allclose(fnmr["value_a"], rates.loc[fnmr.index, "fnmr"])


def test_planted_noise_is_a_significant_change_and_the_ci_matches_an_independent_bootstrap(runs):
    from faceaudit.api import load_run
    from faceaudit.stats.compare import compare_runs

    baseline, _, noisy = runs
    table = compare_runs(baseline, noisy, model_a="sface")
    assert set(table["model_b"]) == {"sface+noise"}
    row = table[(table["metric"] == "fnmr") & (table["group"] == "skin=dark")].iloc[0]
    assert row["change"] > 0.2 and row["significant"] and row["ci_lo"] > 0
    ratio = table[(table["metric"] == "fnmr_ratio") & (table["group"] == "skin=dark")].iloc[0]
    assert ratio["significant"] and ratio["ci_lo"] > 1
    # groups without noise keep (up to the moved global threshold) their FNMR: light is unchanged
    light = table[(table["metric"] == "fnmr") & (table["group"] == "skin=light")].iloc[0]
    assert not light["significant"]

    # Independent check of the dark-group FNMR change: a plain pandas seed bootstrap of the paired
    # per-seed counts, at each run's own threshold (taken from the table's side-by-side values).
    a, b = load_run(baseline), load_run(noisy)
    thr = {}
    for name, run, model in (("a", a, "sface"), ("b", b, "sface+noise")):
        sp = run.scored_pairs(model)
        imp = sp[(sp["kind"] == "impostor") & (sp["status"] == "ok")]["score"].to_numpy()
        from faceaudit.stats.thresholds import threshold_at_fmr

        thr[name] = threshold_at_fmr(imp, 0.01, candidates=sp.loc[sp["status"] == "ok", "score"].to_numpy())
        gen = sp[(sp["kind"] == "genuine") & (sp["status"] == "ok") & (sp["group"] == "skin=dark")]
        per_seed = gen.assign(miss=gen["score"] < thr[name]).groupby("seed_a")["miss"].agg(["sum", "count"])
        thr[name + "_seed"] = per_seed
    sa, sb = thr["a_seed"], thr["b_seed"].reindex(thr["a_seed"].index)
    assert np.isclose(sb["sum"].sum() / sb["count"].sum() - sa["sum"].sum() / sa["count"].sum(), row["change"])
    rng = np.random.default_rng(7)
    seeds = np.arange(len(sa))
    reps = []
    for _ in range(2000):
        idx = rng.choice(seeds, len(seeds))
        reps.append(sb["sum"].to_numpy()[idx].sum() / sb["count"].to_numpy()[idx].sum()
                    - sa["sum"].to_numpy()[idx].sum() / sa["count"].to_numpy()[idx].sum())
    lo, hi = np.percentile(reps, [2.5, 97.5])
    width = hi - lo
    assert abs(row["ci_lo"] - lo) < 0.25 * width and abs(row["ci_hi"] - hi) < 0.25 * width


def test_baseline_gate_exits_0_and_1_with_junit(runs, tmp_path):
    baseline, same, noisy = runs
    cli = CliRunner()
    ok = cli.invoke(app, ["gate", str(same), "--baseline", str(baseline), "--policy", str(POLICY),
                          "--junit", str(tmp_path / "ok.xml")])
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    bad = cli.invoke(app, ["gate", str(noisy), "--baseline", str(baseline), "--baseline-model", "sface",
                           "--policy", str(POLICY), "--junit", str(tmp_path / "bad.xml")])
    assert bad.exit_code == 1, bad.stdout + bad.stderr
    assert "fnmr_ratio_change" in bad.stdout and "skin=dark" in bad.stdout
    xml = (tmp_path / "bad.xml").read_text()
    assert "<failure" in xml and "fnmr_change" in xml
    assert "<failure" not in (tmp_path / "ok.xml").read_text()
    # bad input: runs of different designs, or no model to pair -> exit 2, one line on stderr
    other = cli.invoke(app, ["gate", str(noisy), "--baseline", str(baseline), "--policy", str(POLICY)])
    assert other.exit_code == 2 and "--model-a" in other.stderr and other.stdout == ""
    assert len(other.stderr.strip().splitlines()) == 1


def test_compare_command_prints_and_writes_the_table(runs, tmp_path):
    baseline, _, noisy = runs
    out = tmp_path / "cmp.csv"
    res = CliRunner().invoke(app, ["compare", str(baseline), str(noisy), "--model-a", "sface", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    assert "sface (A) -> sface+noise (B)" in res.stdout and "*" in res.stdout
    table = pd.read_csv(out)
    assert len(table) == 20 and table["significant"].any()


def test_model_card_shows_the_comparison_when_given_a_baseline(runs):
    from faceaudit import api

    baseline, _, noisy = runs
    api.analyze(noisy)  # the card needs the run's own results
    before = sorted(p.name for p in Path(noisy).glob("*.html"))
    path = api.report(noisy, baseline=baseline, baseline_model="sface")  # compared here, laid out by the report
    assert path == Path(noisy) / f"report_vs_{Path(baseline).name}.html"
    assert sorted(p.name for p in Path(noisy).glob("*.html")) == sorted(before + [path.name])
    html = path.read_text()
    assert "7.7 Comparison with the baseline run" in html and "sface+noise (baseline sface)" in html
    section = html[html.index("7.7 Comparison"):html.index('id="ethical-considerations"')]
    assert section.count("★") >= 3  # FNMR of dark and all, the dark/light FNMR contrasts
