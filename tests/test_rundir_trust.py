"""A run directory you can trust in CI (issue: verified stage outputs, no stale tables, exit codes).

Everything runs on copies of the real quick audit (DCGAN faces, dlib and SFace) through the real CLI in
a subprocess, the way CI calls it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from _promised import not_applicable
from faceaudit.rundir import read_table, sha256_file

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "protocols" / "quick.yaml"
POLICY = ROOT / "protocols" / "policies" / "default.yaml"
TABLES = ["faces.parquet", "pairs.parquet", "embeddings/dlib.parquet", "embeddings/sface.parquet",
          "scores/dlib.parquet", "scores/sface.parquet", "results/error_rates.parquet",
          "results/contrasts.parquet", "results/dose_response.parquet", "results/manipulation_check.parquet"]


def cli(*args, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]), COLUMNS="40")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "faceaudit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    # stage logs may precede it on stderr; the error itself is one line, the last one
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return errors[0]


@pytest.fixture
def run_copy(quick_run, tmp_path):
    return Path(shutil.copytree(quick_run, tmp_path / "run"))


def digests(run: Path) -> dict[str, str]:
    return {rel: sha256_file(run / rel) for rel in TABLES}


# ---------------------------------------------------------------------------------------------
# 1. results cover exactly the protocol's models


def test_reused_run_with_another_model_list_reports_exactly_the_new_list(run_copy, tmp_path):
    # First audit the run with a plugin model beside dlib ...
    proto = yaml.safe_load(QUICK.read_text())
    proto["models"] = ["dlib", "plugins.color_model:factory"]
    first = tmp_path / "with_plugin.yaml"
    first.write_text(yaml.safe_dump(proto))
    proc = cli("audit", first, "--out", run_copy, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (run_copy / "scores" / "color-hist.parquet").exists()
    assert "color-hist" in json.loads((run_copy / "results" / "summary.json").read_text())["models"]

    # ... then re-use the directory for the quick protocol (dlib, sface).
    proc = cli("audit", QUICK, "--out", run_copy, "--no-progress", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "report.html" in out["report"]
    assert "models not in the protocol: color-hist" in proc.stderr
    assert (run_copy / "stale" / "scores" / "color-hist.parquet").exists()
    assert sorted(p.stem for p in (run_copy / "scores").glob("*.parquet")) == ["dlib", "sface"]
    summary = json.loads((run_copy / "results" / "summary.json").read_text())
    assert sorted(summary["models"]) == ["dlib", "sface"]
    assert set(read_table(run_copy / "results" / "error_rates.parquet")["model"]) == {"dlib", "sface"}
    contrasts = read_table(run_copy / "results" / "contrasts.parquet")
    per_detector = contrasts["model"].str.startswith("detector:")
    assert set(contrasts.loc[~per_detector, "model"]) == {"dlib", "sface"}
    # FTE contrasts come once per face detector, naming the models that share it: the same two
    assert set(contrasts.loc[per_detector, "models"]) == {"dlib,sface"}
    assert "color-hist" not in (run_copy / "report.html").read_text()
    manifest = json.loads((run_copy / "manifest.json").read_text())
    assert sorted(manifest["models"]) == ["dlib", "sface"]
    assert not [k for k in manifest["stages"] if "color-hist" in k]
    gate = cli("gate", run_copy, "--policy", POLICY, "--json")
    # the re-audited run is the quick run again: its fixed verdict (seven CIs straddle their bound)
    assert gate.returncode == 3, gate.stdout + gate.stderr
    verdict = json.loads(gate.stdout)
    assert verdict["counts"] == {"pass": 5, "fail": 0, "inconclusive": 7}
    assert {c["model"] for c in verdict["checks"]} == {"dlib", "sface"}
    assert {(c["rule"], c["model"], c["group"]) for c in verdict["checks"] if c["decision"] == "inconclusive"} == {
        (1, "dlib", "skin=dark"), (1, "dlib", "skin=intermediate"), (1, "sface", "skin=dark"),
        (1, "sface", "skin=intermediate"), (2, "sface", "skin=intermediate"), (3, "dlib", "skin=dark"),
        (3, "sface", "skin=dark")}


def test_duplicate_models_and_builtin_name_clash_are_rejected_before_any_work(tmp_path):
    proto = yaml.safe_load(QUICK.read_text())
    proto["models"] = ["dlib", "dlib"]
    p = tmp_path / "dup.yaml"
    p.write_text(yaml.safe_dump(proto))
    assert "models: model 'dlib' is listed more than once" in one_line_error(cli("validate", p))

    (tmp_path / "impostor_pkg.py").write_text(textwrap.dedent("""
        from plugins.color_model import ColorHistogram
        class Dlib(ColorHistogram):
            name = "dlib"
        def factory():
            return Dlib()
    """))
    proto["models"] = ["dlib", "impostor_pkg:factory"]
    p.write_text(yaml.safe_dump(proto))
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(tmp_path)])}
    line = one_line_error(cli("audit", p, "--out", tmp_path / "run", "--no-progress", env_extra=env))
    assert "'impostor_pkg:factory' calls itself 'dlib', the name of a built-in model" in line
    assert not (tmp_path / "run" / "images").exists()  # rejected before rendering


# ---------------------------------------------------------------------------------------------
# 2. damaged outputs are noticed and redone


@pytest.mark.slow
def test_fault_injection_every_damaged_output_is_redone_to_identical_tables(run_copy):
    clean = digests(run_copy)
    faces = read_table(run_copy / "faces.parquet")
    image = faces.path.iloc[len(faces) // 2]
    victims = ["faces.parquet", "pairs.parquet", "scores/dlib.parquet", "embeddings/sface.parquet",
               "results/error_rates.parquet", "results/summary.json", image, "manifest.json"]
    for i, rel in enumerate(victims):
        path = run_copy / rel
        data = path.read_bytes()
        # alternate truncation and garbage of the same length
        path.write_bytes(data[: len(data) // 3] if i % 2 == 0 else os.urandom(len(data)))
        proc = cli("audit", QUICK, "--out", run_copy, "--no-progress", "--json")
        assert proc.returncode == 0, (rel, proc.stderr)
        assert "Traceback" not in proc.stderr, rel
        ran = json.loads(proc.stdout)["ran"]
        assert ran and "report" in ran, (rel, ran)
        assert digests(run_copy) == clean, rel
        assert (run_copy / "report.html").exists()
    assert (run_copy / "manifest.json.corrupt").exists()
    # A deleted image is noticed too.
    (run_copy / image).unlink()
    proc = cli("audit", QUICK, "--out", run_copy, "--no-progress", "--json")
    assert proc.returncode == 0 and "generate" in json.loads(proc.stdout)["ran"], proc.stderr
    assert digests(run_copy) == clean


def test_rerun_of_a_finished_audit_loads_no_model(quick_run):
    from faceaudit import pipeline

    ctx = pipeline.audit(QUICK, quick_run, progress=False)
    assert ctx.ran == []
    assert ctx.handles and not any(h.loaded for h in ctx.handles)


def test_corrupt_manifest_is_one_line_for_readers_and_the_gate(run_copy):
    from faceaudit import api
    from faceaudit.core.errors import BadInput

    (run_copy / "manifest.json").write_bytes(b'{"stages": {"generate": ')
    with pytest.raises(BadInput, match="corrupt manifest.*re-run `faceaudit audit"):
        api.load_run(run_copy)
    assert "corrupt manifest" in one_line_error(cli("gate", run_copy, "--policy", POLICY))
    assert "corrupt manifest" in one_line_error(cli("report", run_copy))  # report alone cannot rebuild it


def test_single_stage_commands_refuse_damaged_upstream_outputs(run_copy):
    (run_copy / "results" / "contrasts.parquet").write_bytes(b"garbage")
    line = one_line_error(cli("report", run_copy))
    assert "results/contrasts.parquet: missing, damaged or changed since the `analyze` stage wrote it" in line
    (run_copy / "pairs.parquet").write_bytes(b"")
    assert "pairs.parquet: missing, damaged or changed" in one_line_error(cli("analyze", run_copy))


def test_gate_refuses_a_summary_edited_after_the_analysis(run_copy):
    path = run_copy / "results" / "summary.json"
    summary = json.loads(path.read_text())
    path.write_text(json.dumps(summary, indent=1))  # same content, other bytes: not what analyze wrote
    assert "does not match the sha256 the analysis recorded" in one_line_error(cli("gate", run_copy, "--policy", POLICY))


# ---------------------------------------------------------------------------------------------
# 3. exit code 1 means a violated bound, nothing else


def test_gate_bad_inputs_exit_2_on_stderr(quick_run, tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: d\xe9faut\nrules: [{metric: fnmr, max: 0.5}]\n".encode("latin-1"))
    assert "not UTF-8" in one_line_error(cli("gate", quick_run, "--policy", latin1))
    assert "is a directory" in one_line_error(cli("gate", quick_run, "--policy", tmp_path))
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_line_error(cli("gate", quick_run, "--policy", POLICY, "--junit", afile / "gate.xml"))
    assert "cannot write the JUnit file" in line
    proc = cli("gate", quick_run, "--policy", tmp_path / "nope.yaml")
    one_line_error(proc)
    assert proc.stdout == ""


def test_audit_bad_inputs_exit_2(tmp_path):
    latin1 = tmp_path / "p.yaml"
    latin1.write_bytes(QUICK.read_text().replace("Small", "Sm\xe4ll").encode("latin-1"))
    assert "not UTF-8" in one_line_error(cli("audit", latin1, "--out", tmp_path / "r1"))
    assert "is a directory" in one_line_error(cli("audit", tmp_path, "--out", tmp_path / "r2"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "exists and is not a directory" in one_line_error(cli("audit", QUICK, "--out", afile))
    assert "is a file" in one_line_error(cli("audit", QUICK, "--out", afile / "sub"))
    # a user-caused OS error deep inside a stage is still one line, exit 2
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores directory permissions
            not_applicable("running as root: permissions are not enforced")
        assert "Permission denied" in one_line_error(cli("audit", QUICK, "--out", ro / "run"))
    finally:
        ro.chmod(0o700)


def test_internal_error_exits_4_with_the_traceback_in_a_log(tmp_path):
    # A real bug stands in for an internal error: a plugin whose similarity() crashes would be a user's
    # bug; here faceaudit itself is made to fail by an unexpected exception inside the gate.
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import faceaudit.gate as g
        def boom(*a, **k):
            raise ZeroDivisionError("planted bug")
        g.check = boom
    """))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "FACEAUDIT_LOG_DIR": str(tmp_path / "logs")}
    line = one_line_error(cli("gate", tmp_path, "--policy", POLICY, env_extra=env), code=4)
    assert "internal error" in line and "ZeroDivisionError: planted bug" in line
    logs = list((tmp_path / "logs").glob("faceaudit-crash-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text() and str(logs[0]) in line
    proc = cli("--debug", "gate", tmp_path, "--policy", POLICY, env_extra=env)
    assert proc.returncode == 4 and "Traceback" in proc.stderr and "ZeroDivisionError" in proc.stderr


# ---------------------------------------------------------------------------------------------
# 4. validate catches every value that cannot work


@pytest.mark.parametrize("change, expected", [
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"seed": True}, "seed: Input should be a valid integer"),
    ({"n_seeds": 10**9}, "n_seeds: Input should be less than or equal to 100000"),
    ({"pairs": {"max_impostors_per_condition": -5}}, "pairs.max_impostors_per_condition: Input should be greater than or equal to 1"),
    ({"pairs": {"max_impostors_per_condition": 0}}, "pairs.max_impostors_per_condition: Input should be greater than or equal to 1"),
    ({"analysis": {"far_points": [5, -1]}}, "analysis.far_points.0: Input should be less than 1"),
    ({"analysis": {"fairness_alpha": 7}}, "analysis.fairness_alpha: Input should be less than or equal to 1"),
    ({"analysis": {"n_boot": "500"}}, "analysis.n_boot: Input should be a valid integer"),
    ({"models": ["json:loads"]}, "models.0: plugin 'json:loads': the factory must be callable with no arguments"),
    ({"generator": {"truncation": -1}}, "generator.truncation: Input should be greater than or equal to 0"),
    ({"generator": {"max_skin_steps": -3}}, "generator.max_skin_steps: Input should be greater than or equal to 1"),
    ({"edits": [{"attribute": "yaw", "levels": [1, float("nan")]}]}, "edits.0.levels.1: Input should be a finite number"),
    ({"n_seed": 16, "n_seeds": None}, "n_seed: unknown key (did you mean 'n_seeds'?)"),
    ({"analysis": {"n_bot": 200}}, "analysis.n_bot: unknown key (did you mean 'n_boot'?)"),
])
def test_validate_rejects_values_that_cannot_work(tmp_path, change, expected):
    proto = yaml.safe_load(QUICK.read_text())
    for k, v in change.items():
        if v is None:
            proto.pop(k)
        elif isinstance(v, dict) and isinstance(proto.get(k), dict):
            proto[k].update(v)
        else:
            proto[k] = v
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(proto))
    line = one_line_error(cli("validate", p))
    assert f"{p}: {expected}" in line, line


# ---------------------------------------------------------------------------------------------
# 5. machine-readable output never wraps


def test_validate_prints_exact_yaml_that_round_trips(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "recognizer with spaces.onnx"
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b"")
    proto = yaml.safe_load(QUICK.read_text())
    proto["description"] = "A long description: " + " ".join(f"word{i}" for i in range(60)) + " # not a comment"
    proto["models"] = ["dlib", f"onnx:{deep}"]
    p = tmp_path / "long.yaml"
    p.write_text(yaml.safe_dump(proto))
    first = cli("validate", p)
    assert first.returncode == 0, first.stderr
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(first.stdout)
    second = cli("validate", resolved)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert any(line.strip() == f"- onnx:{deep}" for line in first.stdout.splitlines()), first.stdout
    assert yaml.safe_load(first.stdout)["description"] == proto["description"]


def test_gate_and_audit_output_do_not_wrap_in_ci_logs(quick_run):
    proc = cli("gate", quick_run, "--policy", POLICY)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # the quick run's fixed verdict: inconclusive
    lines = proc.stdout.splitlines()
    verdict = [line for line in lines if line.startswith("gate ")]
    assert verdict == ["gate default: INCONCLUSIVE (exit 3): 5 passed, 0 failed, 7 inconclusive"]
    rows = [line for line in lines if line[:1].isdigit()]
    checks = json.loads(cli("gate", quick_run, "--policy", POLICY, "--json").stdout)["checks"]
    assert len(rows) == len(checks)  # one line per check: no row broken across lines
    proc = cli("audit", QUICK, "--out", quick_run, "--no-progress")
    assert proc.returncode == 0
    ran = [line for line in proc.stdout.splitlines() if line.startswith("ran:")]
    assert len(ran) == 1 and ran[0].endswith("report")


# ---------------------------------------------------------------------------------------------
# 6. smaller ones


def test_summary_md_escapes_names(synthetic_run):
    from faceaudit import api

    proto = yaml.safe_load((synthetic_run / "protocol.yaml").read_text())
    proto["name"] = "<img src=x onerror=alert(1)> [click](javascript:alert(2))"
    (synthetic_run / "protocol.yaml").write_text(yaml.safe_dump(proto))
    api.report(synthetic_run)
    md = (synthetic_run / "results" / "summary.md").read_text()
    assert "<img" not in md and "](javascript" not in md
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in md


def test_notebook_opens_the_run_from_the_notebooks_folder(synthetic_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    rel = Path("runs") / f"_notebook_test_{os.getpid()}"
    target = ROOT / rel
    shutil.copytree(synthetic_run, target)
    try:
        # a generate-only run: no pairs, scores or results yet
        for sub in ("pairs.parquet", "scores", "results", "embeddings"):
            p = target / sub
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        monkeypatch.setenv("FACEAUDIT_RUN", str(rel))
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
        nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
        text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert f"run: {target}" in text, text
        assert "pairs: not built yet" in text
        assert "FNMR by edit level: not computed" in text
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_a_full_disk_is_one_line_exit_2(run_copy, monkeypatch):
    import errno

    from typer.testing import CliRunner

    from faceaudit import rundir
    from faceaudit.cli import app

    real = rundir.write_table

    def full_disk(path, df):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    (run_copy / "pairs.parquet").unlink()  # the pairs stage must write again
    monkeypatch.setattr(rundir, "write_table", full_disk)
    monkeypatch.setattr("faceaudit.pipeline.stages.write_table", full_disk)
    result = CliRunner().invoke(app, ["audit", str(QUICK), "--out", str(run_copy), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert f"{run_copy / 'pairs.parquet'}: No space left on device" in result.output
    assert "Traceback" not in result.output
    assert real is not full_disk
