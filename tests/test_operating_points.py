"""Operating points (issue 16, item 1): ``analysis.thresholds`` adds a fixed threshold a user deploys
and thresholds calibrated on a real-photo run made by ``faceaudit import folder``. Every number at
those thresholds is checked against a direct count from the run's own tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from faceaudit import api
from faceaudit.core.errors import BadInput
from faceaudit.rundir import read_table
from faceaudit.stats.thresholds import threshold_at_fmr

from _t1 import same_face, t1_faces

ROOT = Path(__file__).resolve().parents[1]
FIXED = 0.363


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.run([sys.executable, "-m", "faceaudit.cli", *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def calibration_run(tmp_path_factory):
    """The six real people of t1.jpg, four photos each (the crop, its mirror brightened, two shifted
    crops), imported with `faceaudit import folder` and scored by the quick audit's models."""
    root = tmp_path_factory.mktemp("calibration")
    rows = []
    for i, face in enumerate(t1_faces(side=224)):
        photos = [face, same_face(face), np.roll(face, 6, axis=1), np.roll(face, -6, axis=0)]
        for k, img in enumerate(photos):
            rel = f"imgs/p{i}_{k}.png"
            (root / "imgs").mkdir(exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img)).save(root / rel)
            rows.append({"path": rel, "identity": f"p{i}", "cohort": "a" if i % 2 else "b"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    run = root / "run"
    api.import_dataset("folder", root / "labels.csv", run, models=["dlib", "sface"])
    api.audit_run(run, progress=False, report=False)
    return run


@pytest.fixture(scope="module")
def ops_run(quick_run, calibration_run, tmp_path_factory):
    """The quick audit re-analysed with a fixed sface threshold and the calibration run."""
    run = Path(shutil.copytree(quick_run, tmp_path_factory.mktemp("ops") / "quick"))
    proto = yaml.safe_load((run / "protocol.yaml").read_text())
    proto["analysis"]["thresholds"] = {"sface": FIXED, "calibration_run": str(calibration_run)}
    (run / "protocol.yaml").write_text(yaml.safe_dump(proto, sort_keys=False))
    api.analyze(run)
    return run


def _direct_counts(run: Path, model: str, threshold: float) -> pd.DataFrame:
    """FMR/FNMR per group (and all) at ``threshold`` counted from scores/MODEL.parquet + pairs.parquet."""
    scored = read_table(run / "pairs.parquet").merge(read_table(run / "scores" / f"{model}.parquet")[["pair_id", "score", "status"]],
                                                     on="pair_id")
    ok = scored[scored["status"] == "ok"]
    out = {}
    for g, d in list(ok.groupby("group")) + [("all", ok)]:
        gen, imp = d[d["kind"] == "genuine"], d[d["kind"] == "impostor"]
        fm, fnm = int((imp["score"] >= threshold).sum()), int((gen["score"] < threshold).sum())
        out[g] = {"n_genuine": len(gen), "n_impostor": len(imp), "n_false_match": fm, "n_false_non_match": fnm,
                  "fmr": fm / len(imp), "fnmr": fnm / len(gen)}
    return pd.DataFrame(out).T


def test_fixed_threshold_rows_equal_a_direct_count(ops_run):
    er = read_table(ops_run / "results" / "error_rates.parquet")
    assert set(er["threshold_source"]) == {"target_fmr", "fixed", "calibration_run"}
    rows = er[(er["threshold_source"] == "fixed") & (er["edit_attr"] == "all")]
    assert set(rows["model"]) == {"sface"}  # only the model given a fixed threshold
    assert (rows["threshold"] == FIXED).all() and rows["target_fmr"].isna().all()
    direct = _direct_counts(ops_run, "sface", FIXED)
    got = rows.set_index("group")
    assert sorted(got.index) == sorted(direct.index)
    for col in ("n_genuine", "n_impostor", "n_false_match", "n_false_non_match"):
        assert (got[col].astype(int) == direct.loc[got.index, col].astype(int)).all(), col
    for col in ("fmr", "fnmr"):
        assert np.array_equal(got[col].to_numpy(float), direct.loc[got.index, col].to_numpy(float)), col
    # contrasts and fairness summaries carry the operating point too; the extra ones are not in the primary family
    c = read_table(ops_run / "results" / "contrasts.parquet")
    fixed_c = c[c["threshold_source"] == "fixed"]
    assert len(fixed_c) and set(fixed_c["family"]) == {"exploratory:fixed"} and fixed_c["target_fmr"].isna().all()
    assert set(c.loc[c["target_fmr"].isna() & (c["threshold_source"] != "fixed"), "threshold_source"]) <= {"none"}
    f = read_table(ops_run / "results" / "fairness.parquet")
    assert {"target_fmr", "fixed", "calibration_run"} <= set(f["threshold_source"])
    s = json.loads((ops_run / "results" / "summary.json").read_text())
    block = s["models"]["sface"]["operating_points"]["fixed"]["fixed"]
    assert block["threshold"] == FIXED and block["target_fmr"] is None
    assert block["fmr"]["all"]["estimate"] == pytest.approx(direct.loc["all", "fmr"], abs=0)


def test_calibration_run_sets_the_target_fmr_on_its_own_impostors(ops_run, calibration_run):
    er = read_table(ops_run / "results" / "error_rates.parquet")
    targets = yaml.safe_load((ops_run / "protocol.yaml").read_text())["analysis"]["target_fmr"]
    pairs = read_table(calibration_run / "pairs.parquet")
    for model in ("dlib", "sface"):
        scored = pairs.merge(read_table(calibration_run / "scores" / f"{model}.parquet")[["pair_id", "score", "status"]],
                             on="pair_id")
        ok = scored[scored["status"] == "ok"]
        imp = ok.loc[ok["kind"] == "impostor", "score"].to_numpy(float)
        assert len(imp) > 0
        for t in targets:
            want = threshold_at_fmr(imp, t, candidates=ok["score"].to_numpy(float))
            rows = er[(er["model"] == model) & (er["threshold_source"] == "calibration_run") & np.isclose(er["target_fmr"], t)]
            assert len(rows) and (rows["threshold"] == want).all()
            # on the calibration run's own impostors that threshold attains at most the target FMR
            assert (imp >= want).mean() <= t
            # and the audit's rows at it are direct counts of the audit's own scores
            direct = _direct_counts(ops_run, model, want)
            pooled = rows[rows["edit_attr"] == "all"].set_index("group")
            assert (pooled["n_false_match"].astype(int) == direct.loc[pooled.index, "n_false_match"].astype(int)).all()
    s = json.loads((ops_run / "results" / "summary.json").read_text())
    assert set(s["models"]["dlib"]["operating_points"]) == {"calibration_run"}


def test_gate_rule_scoped_to_the_fixed_threshold(ops_run, tmp_path):
    direct = _direct_counts(ops_run, "sface", FIXED)
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - {metric: fmr, model: sface, group: all, threshold_source: fixed, max: 1.0, on: estimate}\n")
    result = api.gate(ops_run, policy)
    assert result.error is None and result.exit_code == 0
    (check,) = result.checks
    assert check.estimate == direct.loc["all", "fmr"] and check.target_fmr is None
    # the same rule without the scope checks the target-FMR operating point, a different value
    policy.write_text("rules:\n  - {metric: fmr, model: sface, group: all, max: 1.0, on: estimate}\n")
    main = api.gate(ops_run, policy).checks
    assert all(c.target_fmr is not None for c in main)
    # a scope the run did not analyse for that model is one line, exit 2
    policy.write_text("rules:\n  - {metric: fmr, model: dlib, threshold_source: fixed, max: 1.0}\n")
    bad = api.gate(ops_run, policy)
    assert bad.exit_code == 2 and "threshold_source 'fixed' was not analysed for model dlib" in bad.error
    assert "\n" not in bad.error


def _protocol_with(tmp_path: Path, thresholds: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text("name: t\nn_seeds: 4\nedits: [{attribute: yaw, levels: [-1, 1]}]\nmodels: [dlib, sface]\n"
                 f"analysis: {{thresholds: {thresholds}}}\n")
    return p


@pytest.mark.parametrize("thresholds, says", [
    ("{sface: .inf}", "analysis.thresholds: sface: a fixed threshold must be a finite number"),
    ("{sface: .nan}", "analysis.thresholds: sface: a fixed threshold must be a finite number"),
    ("{arcface: 0.3}", "analysis.thresholds.arcface: model 'arcface' is not one of the run's models"),
])
def test_bad_fixed_threshold_is_one_line_exit_2(tmp_path, thresholds, says):
    proc = _cli("validate", str(_protocol_with(tmp_path, thresholds)), cwd=tmp_path)
    assert proc.returncode == 2 and says in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_bad_calibration_run_is_one_line_bad_input(ops_run, quick_run, calibration_run, tmp_path):
    def analyze_with(cal) -> str:
        run = Path(shutil.copytree(ops_run, tmp_path / f"r{len(list(tmp_path.iterdir()))}"))
        proto = yaml.safe_load((run / "protocol.yaml").read_text())
        proto["analysis"]["thresholds"] = {"calibration_run": str(cal)}
        (run / "protocol.yaml").write_text(yaml.safe_dump(proto, sort_keys=False))
        with pytest.raises(BadInput) as err:
            api.analyze(run)
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "not a run directory" in analyze_with(tmp_path / "missing")
    assert "a calibration run is made by `faceaudit import folder`" in analyze_with(quick_run)
    partial = Path(shutil.copytree(calibration_run, tmp_path / "partial"))
    (partial / "scores" / "dlib.parquet").unlink()
    assert "no scores of model 'dlib' in the calibration run" in analyze_with(partial)


def test_a_changed_calibration_run_redoes_the_analysis(ops_run, calibration_run, tmp_path):
    cal = Path(shutil.copytree(calibration_run, tmp_path / "cal"))
    run = Path(shutil.copytree(ops_run, tmp_path / "run"))
    proto = yaml.safe_load((run / "protocol.yaml").read_text())
    proto["analysis"]["thresholds"] = {"calibration_run": str(cal)}
    (run / "protocol.yaml").write_text(yaml.safe_dump(proto, sort_keys=False))
    api.analyze(run)
    first = json.loads((run / "manifest.json").read_text())["stages"]["analyze"]["inputs_hash"]
    scores = read_table(cal / "scores" / "sface.parquet")
    scores["score"] = scores["score"] * 0.5
    scores.to_parquet(cal / "scores" / "sface.parquet")
    api.analyze(run)
    assert json.loads((run / "manifest.json").read_text())["stages"]["analyze"]["inputs_hash"] != first


def test_card_shows_the_operating_points_and_the_operating_note(ops_run, quick_run):
    import re

    html = api.report(ops_run).read_text()
    body = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[html.index("<body"):]))
    head = body[:body.index("Model details")]
    assert "At the fixed threshold" in head and "At thresholds calibrated on the real calibration run" in head
    assert 'id="operating-points"' in html and "calibration run, FMR" in body
    assert re.search(r"the audit operates at FNMR [\d.]+% \(dlib\), [\d.]+% \(sface\)", head)
    # without a calibration run the first screen says one is needed to interpret the rates
    plain = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (Path(quick_run) / "report.html").read_text()))
    assert "a real calibration run (analysis.thresholds: {calibration_run: RUN}) is needed to interpret these rates" in plain
    assert "At the fixed threshold" not in plain
