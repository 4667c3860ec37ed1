"""`faceaudit audit --policy` and `faceaudit import ... --audit --policy` (issue 18): the audit runs the
gate stage, writes results/gate.json and puts the verdict in results/summary.md, and still exits 0
whatever the verdict (DESIGN.md: only `faceaudit gate` exits 1); a missing policy file is one line of
exit 2 before any stage runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "protocols" / "policies" / "default.yaml"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "faceaudit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def _gate_summary_line(gate: dict) -> str:
    c = gate["counts"]
    n = c["pass"] + c["fail"] + c["inconclusive"]
    return (f"**Gate:** policy {gate['policy']} (file {Path(gate['policy_file']).name}): {gate['status'].upper()}, {c['pass']} "
            f"passed, {c['fail']} failed, {c['inconclusive']} inconclusive of {n} checks (results/gate.json).")


@pytest.fixture()
def run_copy(quick_run, tmp_path):
    return Path(shutil.copytree(quick_run, tmp_path / "run"))


def test_audit_policy_writes_gate_json_summary_and_exits_0_on_an_inconclusive_gate(run_copy):
    proc = _cli("audit", run_copy / "protocol.yaml", "--out", run_copy, "--no-progress", "--json", "--policy", POLICY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "gate" in out["ran"] and "report" in out["ran"] and "analyze" in out["up_to_date"]
    gate = json.loads((run_copy / "results" / "gate.json").read_text())
    assert gate["policy_file"] == str(POLICY.resolve())
    assert out["gate"]["status"] == gate["status"] and out["gate"]["counts"] == gate["counts"]
    # the same decisions as `faceaudit gate`, whose exit code is the verdict (inconclusive on the quick run: 3)
    direct = _cli("gate", run_copy, "--policy", POLICY, "--json")
    assert direct.returncode == 3 == gate["exit_code"], direct.stdout + direct.stderr
    assert json.loads(direct.stdout)["counts"] == gate["counts"] and gate["status"] == "inconclusive"
    summary = (run_copy / "results" / "summary.md").read_text()
    assert _gate_summary_line(gate) in summary
    # without a policy, the next audit removes gate.json and the verdict leaves summary.md
    proc = _cli("audit", run_copy / "protocol.yaml", "--out", run_copy, "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (run_copy / "results" / "gate.json").exists()
    assert "**Gate:**" not in (run_copy / "results" / "summary.md").read_text()
    assert not re.search(r"^gate ", proc.stdout, re.M)


def test_audit_policy_line_names_the_verdict(run_copy):
    proc = _cli("audit", run_copy / "protocol.yaml", "--out", run_copy, "--no-progress", "--policy", POLICY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gate = json.loads((run_copy / "results" / "gate.json").read_text())
    c = gate["counts"]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("gate "))
    assert line.startswith(f"gate default ({POLICY.resolve()}): INCONCLUSIVE: {c['pass']} passed, {c['fail']} failed, "
                           f"{c['inconclusive']} inconclusive")


def test_a_missing_policy_is_exit_2_before_any_stage(tmp_path):
    out = tmp_path / "run"
    proc = _cli("audit", ROOT / "protocols" / "quick.yaml", "--out", out, "--no-progress", "--policy", "nope/none.yaml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--policy: nope/none.yaml is not a file" in lines[0]
    assert not out.exists()


def test_audit_help_documents_policy_and_the_exit_code():
    proc = _cli("audit", "--help")
    assert proc.returncode == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", proc.stdout).split())
    assert "--policy" in text and "analysis.policy" in text and "results/gate.json" in text
    assert "The audit exits 0 whatever the verdict" in text and "`faceaudit gate RUN --policy FILE`" in text


STRICT = "name: strict\nrules:\n  - {metric: fnmr_ratio, group: '*', max: 0.5, on: estimate}\n"


def test_import_scores_audit_runs_the_gate_and_exits_0_on_a_failed_bound(tmp_path):
    from faceaudit.stats.score_rates import simulate_score_pairs

    # group B's genuine scores are a whole SD lower: its FNMR is far above half the reference's
    simulate_score_pairs(n_identities=30, seed=0, shift={"B": -1.0}).to_csv(tmp_path / "scores.csv", index=False)
    policy = tmp_path / "strict.yaml"
    policy.write_text(STRICT)
    out = tmp_path / "run"
    proc = _cli("import", "scores", tmp_path / "scores.csv", "--out", out, "--audit", "--policy", policy, "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gate = json.loads((out / "results" / "gate.json").read_text())
    assert gate["status"] == "fail" and gate["counts"]["fail"] >= 1
    assert "gate strict" in proc.stdout and "FAIL" in proc.stdout
    assert _gate_summary_line(gate) in (out / "results" / "summary.md").read_text()
    direct = _cli("gate", out, "--policy", policy)
    assert direct.returncode == 1, direct.stdout + direct.stderr
    # --policy without --audit would be ignored: a usage error, before anything is written
    other = tmp_path / "run2"
    proc = _cli("import", "scores", tmp_path / "scores.csv", "--out", other, "--policy", policy)
    assert proc.returncode == 2 and "only with --audit" in proc.stderr
    assert not other.exists()


def test_api_audit_run_runs_the_gate_stage(tmp_path):
    from faceaudit import api
    from faceaudit.stats.score_rates import simulate_score_pairs

    simulate_score_pairs(n_identities=12, seed=1).to_csv(tmp_path / "scores.csv", index=False)
    api.import_scores(tmp_path / "scores.csv", tmp_path / "run")
    ctx = api.audit_run(tmp_path / "run", progress=False, policy=POLICY)
    assert "gate" in ctx.ran and ctx.ran.index("gate") < ctx.ran.index("report")
    gate = json.loads((tmp_path / "run" / "results" / "gate.json").read_text())
    assert gate["status"] == api.gate(tmp_path / "run", POLICY).status
    again = api.audit_run(tmp_path / "run", progress=False)  # no policy now: the stale verdict goes
    assert not (tmp_path / "run" / "results" / "gate.json").exists() and "report" in again.ran
