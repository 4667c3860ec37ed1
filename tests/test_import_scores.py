"""faceaudit import scores: a user's own score table becomes a run that the analysis, card, gate and
compare read unchanged. A planted group effect shows in results/contrasts.parquet with a CI that
excludes zero, a control file without one does not, and the run's tables equal ErrorRates on the
same scores; bad files are one line on stderr naming file, column and row (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceaudit import api
from faceaudit.core.errors import BadInput
from faceaudit.stats.score_rates import ErrorRates, simulate_score_pairs

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "faceaudit.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _scores(shift_b: float, seed: int) -> pd.DataFrame:
    # genuine scores 4 (+ shift) + identity effect + noise; impostors around 0: FNMR at FMR 1e-3 is moderate
    return simulate_score_pairs(n_identities=40, genuine_per_identity=4, shift={"A": 2.0, "B": 2.0 + shift_b}, seed=seed)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    d = tmp_path_factory.mktemp("scores")
    out = {}
    for name, shift in (("planted", -1.0), ("control", 0.0)):
        _scores(shift, seed=1).to_csv(d / f"{name}.csv", index=False)
        r = _cli("import", "scores", f"{name}.csv", "--out", f"run_{name}", "--audit", "--no-progress", cwd=d)
        assert r.returncode == 0, r.stderr
        out[name] = d / f"run_{name}"
    return d, out


def _pooled(run: Path, metric: str) -> pd.Series:
    c = pd.read_parquet(run / "results" / "contrasts.parquet")
    rows = c[(c["metric"] == metric) & (c["condition"] == "all")]
    assert len(rows) == 1
    return rows.iloc[0]


def test_planted_effect_is_found_and_control_is_not(audited):
    _, runs = audited
    for metric in ("fnmr_diff", "genuine_score_diff"):
        row = _pooled(runs["planted"], metric)
        assert (row["level"], row["reference"]) == ("B", "A")
        if metric == "fnmr_diff":
            assert row["ci_lo"] > 0, row.to_dict()
        else:
            assert row["ci_hi"] < 0 and row["ci_lo"] <= -1.0 <= row["ci_hi"], row.to_dict()  # planted -1.0
        row = _pooled(runs["control"], metric)
        assert row["ci_lo"] <= 0 <= row["ci_hi"], row.to_dict()
    summary = json.loads((runs["planted"] / "results" / "summary.json").read_text())
    assert summary["groups"] == ["A", "B"] and summary["reference_group"] == "A"


def test_the_runs_tables_equal_error_rates_in_memory(audited):
    d, runs = audited
    pairs = pd.read_csv(d / "planted.csv")
    er = ErrorRates(pairs, group="group", cluster=("identity_a", "identity_b"), target_fmr=1e-3, n_boot=1000,
                    ci_level=0.95, random_state=0)
    e = pd.read_parquet(runs["planted"] / "results" / "error_rates.parquet")
    e = e[e["edit_attr"] == "all"].set_index("group")
    bg = pd.concat([er.by_group, er.overall]).set_index("group")
    for g in ("A", "B", "all"):
        for col in ("threshold", "n_genuine", "n_impostor", "fnmr", "fnmr_lo", "fnmr_hi", "fmr", "fmr_lo", "fmr_hi"):
            assert bg.loc[g, col] == pytest.approx(e.loc[g, col], rel=1e-12, abs=1e-15), (g, col)
        assert bg.loc[g, "false_non_matches"] == e.loc[g, "n_false_non_match"]
    c = pd.read_parquet(runs["planted"] / "results" / "contrasts.parquet")
    c = c[c["condition"] == "all"].set_index("metric")
    mine = pd.concat([er.difference(), er.ratio()]).set_index("metric")
    for metric in ("fnmr_diff", "fnmr_ratio", "fmr_diff", "fmr_ratio"):
        for col in ("estimate", "ci_lo", "ci_hi"):
            assert mine.loc[metric, col] == pytest.approx(c.loc[metric, col], rel=1e-12, abs=1e-15), (metric, col)
    # p-values: the audit's is the identity sign-flip test of its primary family (p_method); ErrorRates
    # inverts its bootstrap/dyadic interval (documented in its docstring). Both reject the planted FNMR effect.
    assert set(c["p_method"].dropna()) and mine.loc["fnmr_diff", "p_value"] < 0.05 and c.loc["fnmr_diff", "p_value"] < 0.05


def test_the_card_renders_and_says_observational(audited):
    _, runs = audited
    html = (runs["planted"] / "report.html").read_text()
    assert "Observational audit: the conclusions on this card are correlational, not causal." in html
    assert "comparison scores were imported from" in html
    assert "upscaled faces" not in html  # the generator caveats are not about these scores
    summary_md = (runs["planted"] / "results" / "summary.md").read_text()
    assert "Observational audit of comparison scores" in summary_md and "correlational, not causal" in summary_md
    protocol = api.load_run(runs["planted"]).protocol
    assert protocol.dataset.importer == "scores" and protocol.dataset.design == "observational"
    assert protocol.models == ["scores"]


def test_parquet_two_models_reference_gate_and_compare(tmp_path):
    a = _scores(-1.0, seed=2)
    b = a.copy()
    b["score"] = b["score"] + np.random.default_rng(0).normal(0, 0.3, len(b))
    two = pd.concat([a.assign(model="alpha"), b.iloc[::-1].assign(model="beta")])  # any row order
    two.to_parquet(tmp_path / "two.parquet")
    api.import_scores(tmp_path / "two.parquet", tmp_path / "run2", reference="B")
    ctx = api.audit_run(tmp_path / "run2", progress=False)
    assert ctx.run.report.exists()
    c = pd.read_parquet(tmp_path / "run2" / "results" / "contrasts.parquet")
    per_model = ~c["model"].str.startswith("detector:")  # FTE rows come once per detector (here: none ran)
    assert set(c.loc[per_model, "model"]) == {"alpha", "beta"} and set(c["reference"]) == {"B"} and set(c["level"]) == {"A"}
    row = c[(c["model"] == "alpha") & (c["metric"] == "fnmr_diff") & (c["condition"] == "all")].iloc[0]
    assert row["ci_hi"] < 0  # A has fewer false non-matches than the reference B
    # gate and compare work on imported runs unchanged
    r = _cli("gate", "run2", "--policy", ROOT / "protocols" / "policies" / "default.yaml", cwd=tmp_path)
    # the FMR ratio of both models straddles the 1.5 bound (few false matches): inconclusive, exactly
    assert r.returncode == 3, r.stdout + r.stderr
    assert "gate default: INCONCLUSIVE (exit 3): 4 passed, 0 failed, 2 inconclusive" in r.stdout
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    api.import_scores(tmp_path / "a.csv", tmp_path / "ra")
    api.import_scores(tmp_path / "b.csv", tmp_path / "rb")
    for run in ("ra", "rb"):
        api.audit_run(tmp_path / run, progress=False, report=False)
    table = api.compare(tmp_path / "ra", tmp_path / "rb")
    assert {"fnmr", "fmr", "fnmr_diff"} <= set(table["metric"])
    # there is nothing to embed or score in such a run
    with pytest.raises(BadInput, match="nothing to embed"):
        api.embed(tmp_path / "ra")


HEADER = "identity_a,identity_b,kind,group,score"
GOOD = ["x,x,genuine,A,0.9", "x,y,impostor,A,0.1", "u,u,genuine,B,0.8", "u,v,impostor,B,0.2"]


@pytest.mark.parametrize("name,lines,column,row", [
    ("missing_column", ["identity_a,identity_b,kind,group", "x,x,genuine,A"], "score", None),
    ("non_numeric", [HEADER, *GOOD[:2], "u,u,genuine,B,high", GOOD[3]], "score", 3),
    ("nan_score", [HEADER, GOOD[0], "x,y,impostor,A,", *GOOD[2:]], "score", 2),
    ("nan_text", [HEADER, *GOOD[:3], "u,v,impostor,B,nan"], "score", 4),
    ("no_kind", [HEADER, *GOOD[:3], "u,v,,B,0.2"], "kind", 4),
    ("unknown_kind", [HEADER, GOOD[0], "x,y,imposter,A,0.1", *GOOD[2:]], "kind", 2),
    ("no_genuine_in_group", [HEADER, *GOOD, "p,q,impostor,C,0.3"], "group", 5),
    ("group_named_all", [HEADER, *GOOD[:2], "u,u,genuine,all,0.8", GOOD[3]], "group", 3),
    ("genuine_of_two", [HEADER, "x,y,genuine,A,0.9", *GOOD[1:]], "identity_b", 1),
])
def test_bad_files_exit_2_with_one_line_naming_file_column_and_row(tmp_path, name, lines, column, row):
    f = tmp_path / f"{name}.csv"
    f.write_text("\n".join(lines) + "\n")
    r = _cli("import", "scores", f.name, "--out", "run", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert f.name in err and column in err, err
    if row is not None:
        assert f"data row {row}:" in err, err
    assert not (tmp_path / "run" / "faces.parquet").exists()
