"""Gate: decisions and exit codes, policy validation, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from faceaudit import gate

ROOT = Path(__file__).resolve().parents[1]


def _summary(tmp_path, ratio=(1.10, 1.05, 1.20), fnmr_dark=(0.02, 0.01, 0.03), ci_hi_null=False):
    est, lo, hi = ratio
    s = {
        "schema": "faceaudit.summary/1", "ci_level": 0.95,
        "models": {
            "dlib": {
                "fte_rate": {"skin=light": {"estimate": 0.0, "ci_lo": 0.0, "ci_hi": 0.0}},
                "fte_max_min_ratio": {"estimate": 1.0, "ci_lo": 1.0, "ci_hi": 1.4},
                "1e-03": {"target_fmr": 0.001, "threshold": 0.5,
                          "fnmr_max_min_ratio": {"estimate": est, "ci_lo": lo, "ci_hi": None if ci_hi_null else hi},
                          "fnmr": {"skin=dark": dict(zip(("estimate", "ci_lo", "ci_hi"), fnmr_dark)),
                                   "skin=light": {"estimate": 0.01, "ci_lo": 0.005, "ci_hi": 0.015}},
                          "fdr": {"estimate": 0.97, "ci_lo": 0.95, "ci_hi": 0.99}},
            },
            "sface": {"1e-03": {"target_fmr": 0.001, "threshold": 0.4,
                                "fnmr_max_min_ratio": {"estimate": 1.1, "ci_lo": 1.0, "ci_hi": 1.2}}},
        },
    }
    run = tmp_path / "run"
    (run / "results").mkdir(parents=True, exist_ok=True)
    (run / "results" / "summary.json").write_text(json.dumps(s))
    return run


def _policy(tmp_path, text):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


RATIO_RULE = "rules:\n  - metric: fnmr_max_min_ratio\n    model: dlib\n    target_fmr: 1e-3\n    max: 1.25\n    on: {on}\n"


@pytest.mark.parametrize("ratio,on,code", [
    ((1.10, 1.05, 1.20), "ci_upper", 0),   # whole CI below the bound
    ((1.50, 1.30, 1.70), "ci_upper", 1),   # whole CI above: confidently violated
    ((1.20, 1.10, 1.40), "ci_upper", 3),   # straddles: inconclusive
    ((1.20, 1.10, 1.40), "estimate", 0),   # estimate alone decides
    ((1.30, 1.10, 1.40), "estimate", 1),
    ((1.20, 1.10, 1.40), "ci_lower", 0),   # benefit of the doubt
    ((1.50, 1.30, 1.70), "ci_lower", 1),
])
def test_decisions_and_exit_codes(tmp_path, ratio, on, code):
    run = _summary(tmp_path, ratio=ratio)
    junit = tmp_path / "out.xml"
    res = gate.check(run, _policy(tmp_path, RATIO_RULE.format(on=on)), junit)
    assert res.exit_code == code, gate.render_text(res)
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    cases = root.findall(".//testcase")
    assert len(cases) == 1
    assert (cases[0].find("failure") is not None) == (code == 1)
    assert (cases[0].find("skipped") is not None) == (code == 3)
    if code == 3:
        assert "straddles" in cases[0].find("skipped").get("message") and "1.4" in cases[0].find("skipped").get("message")


def test_min_bound_group_wildcard_and_threshold_free(tmp_path):
    run = _summary(tmp_path)
    pol = _policy(tmp_path, """
name: mixed
rules:
  - {metric: fdr, min: 0.9, model: dlib}         # default on: ci_lower for a min bound
  - {metric: fnmr, group: "*", max: 0.05, model: dlib}   # one check per group
  - {metric: fte_max_min_ratio, model: dlib, max: 2}
""")
    res = gate.check(run, pol, tmp_path / "j.xml")
    assert res.exit_code == 0, gate.render_text(res)
    assert [c.rule.on for c in res.checks][:1] == ["ci_lower"]
    assert sorted(c.group for c in res.checks if c.rule.metric == "fnmr") == ["skin=dark", "skin=light"]
    assert len(ET.parse(tmp_path / "j.xml").getroot().findall(".//testcase")) == len(res.checks) == 4
    text = gate.render_text(res)
    assert "PASS (exit 0)" in text and "fte_max_min_ratio" in text
    # model "*" spans both models; fail beats inconclusive in the exit code
    res2 = gate.evaluate(json.loads((run / "results" / "summary.json").read_text()),
                         gate.parse_policy({"rules": [{"metric": "fnmr_max_min_ratio", "max": 1.15},
                                                      {"metric": "fnmr", "group": "skin=dark", "max": 0.005, "model": "dl*"}]}))
    assert {c.model for c in res2.checks} == {"dlib", "sface"}
    assert res2.exit_code == 1


def test_null_value_is_inconclusive(tmp_path):
    run = _summary(tmp_path, ci_hi_null=True)
    res = gate.check(run, _policy(tmp_path, RATIO_RULE.format(on="ci_upper")))
    assert res.exit_code == 3 and "not estimable" in res.checks[0].reason


@pytest.mark.parametrize("text,match", [
    ("rules:\n  - {metric: fdr, min: 0.9, maxx: 1}\n", "maxx: unknown key"),
    ("rules:\n  - {metric: fdr}\n", "exactly one of max or min"),
    ("rules:\n  - {metric: fdr, min: 0.9, max: 1}\n", "exactly one of max or min"),
    ("rules:\n  - {metric: fdr, min: 0.9, on: upper}\n", "rules.0.on"),
    ("rules: []\n", "at least one rule"),
    ("rules:\n  - {metric: nope, max: 1}\n", "metric 'nope' not in summary.json"),
    ("rules:\n  - {metric: fdr, min: 0.9, target_fmr: 0.01}\n", "target_fmr 0.01 was not analysed"),
    ("rules:\n  - {metric: fdr, min: 0.9, model: resnet}\n", "matches none of the run's models"),
    ("rules:\n  - {metric: fnmr, group: skin=green, max: 0.1, model: dlib}\n", "group 'skin=green'"),
    ("rules: [\n", "not valid YAML"),
])
def test_bad_policy_is_exit_2_with_one_line(tmp_path, text, match):
    run = _summary(tmp_path)
    res = gate.check(run, _policy(tmp_path, text), tmp_path / "j.xml")
    assert res.exit_code == 2
    assert match in res.error and "\n" not in res.error
    err = ET.parse(tmp_path / "j.xml").getroot().find(".//error")
    assert err is not None and match in err.get("message")


def test_missing_summary_and_policy(tmp_path):
    res = gate.check(tmp_path, ROOT / "protocols" / "policies" / "default.yaml")
    assert res.exit_code == 2 and "summary.json: missing" in res.error
    res = gate.check(_summary(tmp_path), tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "policy file not found" in res.error


def test_shipped_default_policy_parses_and_runs(tmp_path):
    pol = gate.load_policy(ROOT / "protocols" / "policies" / "default.yaml")
    assert pol.rules and all(r.on == "ci_upper" for r in pol.rules)
    ok = {"estimate": 1.0, "ci_lo": 0.9, "ci_hi": 1.1, "p_value": 0.5, "p_adjusted": 1.0}
    per_group = {"skin=dark": ok, "skin=intermediate": ok}
    summary = {"ci_level": 0.95, "models": {"m": {
        "fte_rate_diff": {g: {"estimate": 0.0, "ci_lo": -0.01, "ci_hi": 0.01} for g in per_group},
        "1e-03": {"target_fmr": 1e-3, "threshold": 0.3, "fnmr_ratio": per_group, "fmr_ratio": per_group}}}}
    res = gate.evaluate(summary, pol)
    assert res.exit_code == 0 and len(res.checks) == 6, gate.render_text(res)
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(gate.render_rich(res))
    assert "PASS" in console.export_text()
