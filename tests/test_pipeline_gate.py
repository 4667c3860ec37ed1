"""The audit runs the gate when a policy is named (issue 18): results/gate.json is written, the card
colours its headline against that policy only and states the policy's file, bounds and verdict; with
no policy nothing is coloured and a stale gate.json is removed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from faceaudit.core.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "protocols" / "policies" / "default.yaml"


def _head(page: str) -> str:
    return page.split('<nav class="toc">')[0]


@pytest.fixture()
def run_copy(quick_run, tmp_path):
    return Path(shutil.copytree(quick_run, tmp_path / "run"))


def test_audit_with_a_policy_writes_gate_json_and_the_card_colours_against_it(run_copy):
    from faceaudit import pipeline
    from faceaudit.gate import check

    ctx = pipeline.audit(run_copy / "protocol.yaml", run_copy, progress=False, policy=POLICY)
    assert "gate" in ctx.ran and "report" in ctx.ran
    assert not {"generate", "embed:dlib", "analyze"} & set(ctx.ran)  # nothing upstream redone
    gate = json.loads((run_copy / "results" / "gate.json").read_text())
    direct = check(run_copy, POLICY)  # the same decisions `faceaudit gate` gives
    assert gate["status"] == direct.status and gate["policy"] == "default"
    assert [c["decision"] for c in gate["checks"]] == [c.decision for c in direct.checks]
    assert gate["policy_file"] == str(POLICY.resolve()) and len(gate["rules"]) == 3
    head = _head((run_copy / "report.html").read_text())
    assert "decisions of the gate policy <b>default</b>" in head
    assert "fnmr_ratio ≤ 1.25 (whole CI)" in head and "not a standard" in head
    coloured = re.findall(r'class="num (pass|fail|inconclusive)"', head)
    assert coloured, "a policy with ratio rules colours the headline's contrasts"
    # every coloured contrast cell names the rule's metric that decided it
    assert len(re.findall(r'title="gate decision on (fnmr|fmr)_ratio"', head)) == len(coloured)
    # the same audit again: the gate is up to date
    again = pipeline.audit(run_copy / "protocol.yaml", run_copy, progress=False, policy=POLICY)
    assert "gate" in again.skipped


def test_no_policy_no_colour_and_a_stale_gate_is_removed(run_copy):
    from faceaudit import pipeline

    pipeline.audit(run_copy / "protocol.yaml", run_copy, progress=False, policy=POLICY)
    assert (run_copy / "results" / "gate.json").exists()
    ctx = pipeline.audit(run_copy / "protocol.yaml", run_copy, progress=False)
    assert not (run_copy / "results" / "gate.json").exists()
    assert "report" in ctx.ran
    head = _head((run_copy / "report.html").read_text())
    assert not re.search(r'class="num (pass|fail|inconclusive)"', head)
    assert "No gate policy recorded for this run" in head


def test_a_missing_policy_file_is_one_line_of_bad_input(tmp_path):
    from faceaudit.pipeline import resolve_policy

    with pytest.raises(BadInput, match=r"^protocol.yaml: analysis.policy: nope/none.yaml is not a file"):
        resolve_policy("nope/none.yaml", "protocol.yaml")
    assert resolve_policy("protocols/policies/default.yaml", "p") == POLICY.resolve()


def test_protocol_policy_field_reaches_the_gate_without_redoing_the_analysis(run_copy):
    import yaml

    from faceaudit import pipeline

    p = yaml.safe_load((run_copy / "protocol.yaml").read_text())
    p.setdefault("analysis", {})["policy"] = str(POLICY)
    proto = run_copy.parent / "with-policy.yaml"
    proto.write_text(yaml.safe_dump(p))
    ctx = pipeline.audit(proto, run_copy, progress=False)
    assert "gate" in ctx.ran and "analyze" not in ctx.ran
    assert json.loads((run_copy / "results" / "gate.json").read_text())["policy"] == "default"
