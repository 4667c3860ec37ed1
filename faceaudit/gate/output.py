"""A gate result written out: JUnit XML for CI, a JSON-able dict, a plain-text table, a rich table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from faceaudit.gate.result import FAIL, INCONCLUSIVE, PASS, GateResult, format_value

__all__ = ["HEADER", "result_dict", "junit_xml", "write_junit", "render_text", "render_rich"]


def result_dict(result: GateResult) -> dict:
    """The gate's outcome as plain JSON-able data (``faceaudit gate --json``)."""
    return {
        "policy": result.policy,
        "status": result.status,
        "exit_code": result.exit_code,
        "error": result.error,
        "counts": result.counts(),
        "checks": [{"rule": c.rule_index + 1, "metric": c.rule.metric, "model": c.model, "target_fmr": c.target_fmr,
                    "threshold_source": c.rule.threshold_source,
                    "group": c.group, "estimate": c.estimate, "ci_lo": c.ci_lo, "ci_hi": c.ci_hi,
                    "bound": c.rule.bound, "kind": c.rule.kind, "on": c.rule.on, "decision": c.decision,
                    "reason": c.reason} for c in result.checks],
    }


def junit_xml(result: GateResult) -> str:
    c = result.counts()
    suites = ET.Element("testsuites", name="faceaudit gate")
    suite = ET.SubElement(suites, "testsuite", name=f"faceaudit gate: {result.policy}",
                          tests=str(max(len(result.checks), 1 if result.error else 0)), failures=str(c[FAIL]),
                          errors=str(1 if result.error else 0), skipped=str(c[INCONCLUSIVE]), time="0")
    if result.error:
        case = ET.SubElement(suite, "testcase", classname="faceaudit.gate", name="policy and summary", time="0")
        ET.SubElement(case, "error", message=result.error, type="BadInput").text = result.error
    for ch in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"faceaudit.gate.{ch.model}", name=ch.name, time="0")
        if ch.decision == FAIL:
            ET.SubElement(case, "failure", message=ch.reason, type="GateFailed").text = ch.reason
        elif ch.decision == INCONCLUSIVE:
            ET.SubElement(case, "skipped", message=f"inconclusive: {ch.reason}")
        out = ET.SubElement(case, "system-out")
        out.text = (f"{ch.decision}: {ch.reason}" + (f"\n{ch.rule.description}" if ch.rule.description else ""))
    for attr in ("tests", "failures", "errors", "skipped"):
        suites.set(attr, suite.get(attr))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(result: GateResult, path: str | Path) -> None:
    from faceaudit.rundir import write_text

    write_text(path, junit_xml(result))


def _rows(result: GateResult) -> list[list[str]]:
    rows = []
    for ch in result.checks:
        point = "" if ch.target_fmr is None else f"{ch.target_fmr:.0e}"
        if ch.rule.threshold_source != "target_fmr":  # the operating point the rule names
            point = "fixed" if ch.rule.threshold_source == "fixed" else f"{point} (calibration run)"
        rows.append([str(ch.rule_index + 1), ch.model, point,
                     ch.group or "", ch.rule.metric, format_value(ch.estimate), f"[{format_value(ch.ci_lo)}, {format_value(ch.ci_hi)}]",
                     f"{'<=' if ch.rule.kind == 'max' else '>='} {ch.rule.bound:g}", ch.rule.on or "", ch.decision.upper()])
    return rows


HEADER = ["#", "model", "FMR", "group", "metric", "estimate", "CI", "bound", "on", "result"]


def render_text(result: GateResult) -> str:
    """Plain-text rule table plus a one-line verdict (for logs and terminals without rich)."""
    if result.error:
        return f"gate: BAD INPUT (exit 2): {result.error}"
    rows = [HEADER] + _rows(result)
    widths = [max(len(r[j]) for r in rows) for j in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for ch in result.checks:
        if ch.decision != PASS:
            lines.append(f"  rule {ch.rule_index + 1} {ch.model}{' ' + ch.group if ch.group else ''}: {ch.decision}: {ch.reason}")
    c = result.counts()
    lines.append(f"gate {result.policy}: {result.status.upper()} (exit {result.exit_code}): "
                 f"{c[PASS]} passed, {c[FAIL]} failed, {c[INCONCLUSIVE]} inconclusive")
    return "\n".join(lines)


def render_rich(result: GateResult):
    """A ``rich.table.Table`` of the checks (colour-coded result column)."""
    from rich.table import Table

    c = result.counts()
    table = Table(title=f"gate {result.policy}: {result.status.upper()} (exit {result.exit_code})",
                  caption=(result.error or f"{c[PASS]} passed, {c[FAIL]} failed, {c[INCONCLUSIVE]} inconclusive"))
    for h in HEADER:
        table.add_column(h, justify="right" if h in ("#", "estimate") else "left")
    style = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow"}
    for r in _rows(result):
        table.add_row(*r[:-1], f"[{style[r[-1]]}]{r[-1]}[/]")
    return table
