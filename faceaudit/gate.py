"""Policy gate for CI: compare a run's ``results/summary.json`` with bounds from a policy YAML.

Policy file (unknown keys are errors)::

    name: default                # optional
    rules:
      - metric: fnmr_max_min_ratio   # a key of summary.json (see docs/statistics.md)
        model: "*"                   # fnmatch pattern over the run's models (default "*")
        target_fmr: 1e-3             # operating point; omitted = every target FMR of the run
        group: "*"                   # for per-group metrics (fnmr, fnmr_diff, ...): a group or "*"
        max: 1.25                    # exactly one of max / min
        on: ci_upper                 # estimate | ci_upper | ci_lower (default: the conservative end)
        description: "..."           # optional, shown in the report and JUnit

Decisions for a ``max`` bound (a ``min`` bound is the mirror image, with ci_lower as its default):

========== ============================ ============================ ===========================
``on``      pass                         fail                         inconclusive
========== ============================ ============================ ===========================
ci_upper    ``ci_hi <= max`` (shown OK)  ``ci_lo > max`` (shown bad)  CI straddles ``max``
estimate    ``estimate <= max``          ``estimate > max``           never
ci_lower    ``ci_lo <= max``             ``ci_lo > max``              never
========== ============================ ============================ ===========================

``ci_upper`` (the default for ``max``) asks the run to *demonstrate* compliance and only fails when the
violation is itself demonstrated; ``ci_lower`` gives the benefit of the doubt (fail only when
confidently violated); ``estimate`` ignores uncertainty. A value that could not be estimated (null in
summary.json) is inconclusive. Exit code (DESIGN.md): 1 if any check fails, else 3 if any is
inconclusive, else 0; 2 for a bad policy, a missing or malformed summary, or a rule naming a
metric, model, group or target FMR the run does not have.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from faceaudit.core.errors import BadInput
from faceaudit.protocol import _format_error

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
EXIT = {PASS: 0, FAIL: 1, "bad_input": 2, INCONCLUSIVE: 3}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: str
    model: str = "*"
    target_fmr: Optional[float] = None
    group: Optional[str] = None
    max: Optional[float] = None
    min: Optional[float] = None
    on: Optional[Literal["estimate", "ci_upper", "ci_lower"]] = None
    description: str = ""

    @field_validator("target_fmr")
    @classmethod
    def _fmr(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not 0 < v < 1:
            raise ValueError("target_fmr must be in (0, 1)")
        return v

    @model_validator(mode="after")
    def _bound(self) -> "Rule":
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max or min")
        bound = self.max if self.max is not None else self.min
        if not math.isfinite(bound):
            raise ValueError("the bound must be a finite number")
        if self.on is None:
            self.on = "ci_upper" if self.max is not None else "ci_lower"
        return self

    @property
    def kind(self) -> str:
        return "max" if self.max is not None else "min"

    @property
    def bound(self) -> float:
        return float(self.max if self.max is not None else self.min)

    def label(self) -> str:
        op = "<=" if self.kind == "max" else ">="
        return f"{self.metric} {op} {self.bound:g} (on {self.on})"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "policy"
    description: str = ""
    rules: list[Rule]

    @field_validator("rules")
    @classmethod
    def _nonempty(cls, v: list[Rule]) -> list[Rule]:
        if not v:
            raise ValueError("at least one rule")
        return v


@dataclass
class Check:
    """One evaluated (rule, model, target FMR, group) cell."""

    rule_index: int
    rule: Rule
    model: str
    target_fmr: Optional[float]
    group: Optional[str]
    estimate: Optional[float]
    ci_lo: Optional[float]
    ci_hi: Optional[float]
    decision: str
    reason: str

    @property
    def name(self) -> str:
        parts = [f"rule {self.rule_index + 1}: {self.rule.label()}"]
        if self.target_fmr is not None:
            parts.append(f"@ FMR {self.target_fmr:.0e}")
        if self.group is not None:
            parts.append(f"[{self.group}]")
        return " ".join(parts)


@dataclass
class GateResult:
    policy: str
    checks: list[Check] = field(default_factory=list)
    error: Optional[str] = None  # set when the input was bad (exit 2)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "bad_input"
        decisions = {c.decision for c in self.checks}
        if FAIL in decisions:
            return FAIL
        if INCONCLUSIVE in decisions:
            return INCONCLUSIVE
        return PASS

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]

    def counts(self) -> dict[str, int]:
        out = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0}
        for c in self.checks:
            out[c.decision] += 1
        return out


# ---------------------------------------------------------------------------------------------
# loading


class _PolicyLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 (PyYAML's default) reads the key ``on:`` as the
    boolean True, which would turn every ``on: ci_upper`` into an unknown key."""


_PolicyLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def _read_text(path: Path, what: str) -> str:
    """A user's text file, every way it can fail as one line naming it."""
    if not path.exists():
        raise BadInput(f"{path}: {what} not found")
    if path.is_dir():
        raise BadInput(f"{path}: {what} is a directory, not a file")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: {what} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise BadInput(f"{path}: cannot read {what}: {err.strerror or err}") from None


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    text = _read_text(path, "policy file")
    try:
        data = yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    return parse_policy(data, str(path))


def parse_policy(data: Any, where: str = "policy") -> Policy:
    if not isinstance(data, dict):
        raise BadInput(f"{where}: a policy must be a YAML mapping with a 'rules' list")
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        raise BadInput(_format_error(err, where)) from None


def load_summary(run_root: str | Path) -> dict:
    """``results/summary.json``, refused when the run's manifest says it is not what the analysis wrote."""
    from faceaudit.rundir import RunDir, sha256_file

    run = RunDir(run_root)
    if not run.root.is_dir():
        raise BadInput(f"{run.root}: not a run directory")
    path = run.results / "summary.json"
    if not path.is_file():
        raise BadInput(f"{path}: missing; run the analyze stage first")
    # A gate must never pass on results the run cannot vouch for: a corrupt manifest, or a summary
    # edited or damaged after the analysis wrote it. (A summary with no manifest beside it was made
    # by other tools and is read as it is.)
    if run.manifest.exists():
        from faceaudit.rundir import ManifestCorrupt

        try:
            recorded = run.recorded_output("analyze", "results/summary.json")
        except ManifestCorrupt as err:
            raise BadInput(f"{err}; the gate cannot vouch for the results: re-run `faceaudit audit` on this run "
                           f"to check every stage and rebuild it") from None
        if recorded is None:
            raise BadInput(f"{path}: the manifest records no finished analysis; run `faceaudit analyze {run.root}`")
        if sha256_file(path) != recorded:
            raise BadInput(f"{path}: does not match the sha256 the analysis recorded in manifest.json "
                           f"(damaged or edited); run `faceaudit analyze {run.root}` again")
    try:
        summary = json.loads(_read_text(path, "summary"))
    except json.JSONDecodeError as err:
        raise BadInput(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("models"), dict):
        raise BadInput(f"{path}: no 'models' mapping; not a faceaudit summary")
    return summary


# ---------------------------------------------------------------------------------------------
# evaluation


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def decide(estimate: Optional[float], lo: Optional[float], hi: Optional[float], kind: str, bound: float,
           on: str, ci_level: float = 0.95) -> tuple[str, str]:
    """``(decision, reason)`` for one value against one bound (see the module docstring table)."""
    pct = f"{ci_level:.0%}"
    ci = f"{pct} CI [{_fmt(lo)}, {_fmt(hi)}]"
    op, nop = ("<=", ">") if kind == "max" else (">=", "<")
    needed = {"estimate": estimate, "ci_upper": hi, "ci_lower": lo}[on]
    if needed is None or (on != "estimate" and (lo is None or hi is None)):
        return INCONCLUSIVE, f"not estimable (value is null in summary.json; estimate {_fmt(estimate)}, {ci})"

    def ok(x: float) -> bool:
        return x <= bound if kind == "max" else x >= bound

    est_s = f"estimate {_fmt(estimate)}, {ci}"
    if on == "estimate":
        if ok(estimate):
            return PASS, f"estimate {_fmt(estimate)} {op} {bound:g} ({ci})"
        return FAIL, f"estimate {_fmt(estimate)} {nop} {bound:g} ({ci})"
    conservative = (kind == "max" and on == "ci_upper") or (kind == "min" and on == "ci_lower")
    near, far = (hi, lo) if kind == "max" else (lo, hi)  # near = the end that must satisfy the bound
    if conservative:
        if ok(near):
            return PASS, f"whole {ci} {op} {bound:g} ({est_s})"
        if not ok(far):
            return FAIL, f"whole {ci} {nop} {bound:g}: confidently violated ({est_s})"
        return INCONCLUSIVE, (f"{ci} straddles {kind} {bound:g} (estimate {_fmt(estimate)}): "
                              f"the data cannot tell; more seeds would narrow the interval")
    # lenient: fail only when the far end also violates the bound
    if ok(far):
        return PASS, f"{'lower' if kind == 'max' else 'upper'} CI bound {_fmt(far)} {op} {bound:g} ({est_s})"
    return FAIL, f"whole {ci} {nop} {bound:g}: confidently violated ({est_s})"


def _lookup(model_block: dict, key: Optional[str], metric: str) -> Optional[Any]:
    block = model_block.get(key) if key is not None else model_block
    value = block.get(metric) if isinstance(block, dict) else None
    return value if isinstance(value, dict) else None


def _fmr_keys(model_block: dict) -> dict[str, float]:
    return {k: float(v["target_fmr"]) for k, v in model_block.items()
            if isinstance(v, dict) and "target_fmr" in v and "threshold" in v}


def evaluate(summary: dict, policy: Policy) -> GateResult:
    """Evaluate every rule on a summary dict. Raises :class:`BadInput` for rules the run cannot answer."""
    result = GateResult(policy=policy.name)
    models = summary["models"]
    level = float(summary.get("ci_level", 0.95))
    for i, rule in enumerate(policy.rules):
        where = f"policy rule {i + 1} ({rule.metric})"
        matched = [m for m in models if fnmatch.fnmatchcase(m, rule.model)]
        if not matched:
            raise BadInput(f"{where}: model pattern {rule.model!r} matches none of the run's models {sorted(models)}")
        for m in matched:
            block = models[m]
            keys = _fmr_keys(block)
            model_level = isinstance(block.get(rule.metric), dict)
            if rule.target_fmr is not None:
                want = f"{rule.target_fmr:.0e}"
                if want not in keys:
                    raise BadInput(f"{where}: target_fmr {rule.target_fmr:g} was not analysed for model {m} "
                                   f"(run has {sorted(keys.values())})")
                targets: list[Optional[str]] = [want]
            elif model_level or not keys:
                # threshold-free metric (fte_rate, genuine_score_diff, ...): evaluated once
                targets = [None]
            else:
                targets = sorted(keys, key=lambda k: keys[k])
            for key in targets:
                value = _lookup(block, key, rule.metric)
                if value is None:
                    avail = {k for k, v in block.items() if isinstance(v, dict) and k not in keys}
                    if key is not None:
                        avail |= {k for k, v in block[key].items() if isinstance(v, dict)}
                    raise BadInput(f"{where}: metric {rule.metric!r} not in summary.json for model {m} "
                                   f"(available: {', '.join(sorted(avail))})")
                fmr = keys.get(key) if key else None
                if "estimate" in value:
                    if rule.group not in (None, "*"):
                        raise BadInput(f"{where}: metric {rule.metric!r} is not per group; remove 'group'")
                    cells = [(None, value)]
                else:
                    if rule.group in (None, "*"):
                        cells = sorted(value.items())
                    elif rule.group in value:
                        cells = [(rule.group, value[rule.group])]
                    else:
                        raise BadInput(f"{where}: group {rule.group!r} not in {rule.metric} for model {m} (has {sorted(value)})")
                # point-only values (auc, eer) have no CI: only `on: estimate` can decide them
                cells = [(g, v if isinstance(v, dict) else {"estimate": v, "ci_lo": None, "ci_hi": None}) for g, v in cells]
                for g, v in cells:
                    est, lo, hi = v.get("estimate"), v.get("ci_lo"), v.get("ci_hi")
                    decision, reason = decide(est, lo, hi, rule.kind, rule.bound, rule.on, level)
                    result.checks.append(Check(i, rule, m, fmr, g, est, lo, hi, decision, reason))
    return result


def check(run_root: str | Path, policy_path: str | Path, junit_path: str | Path | None = None) -> GateResult:
    """Evaluate ``policy_path`` on ``run_root``; write JUnit XML when asked; never raises for bad input.

    Bad input (policy, summary or a rule the run cannot answer) gives ``exit_code == 2`` and
    ``result.error`` (one line); the JUnit file then holds one errored test case saying why.
    """
    name = Path(policy_path).stem
    try:
        policy = load_policy(policy_path)
        name = policy.name
        result = evaluate(load_summary(run_root), policy)
    except BadInput as err:
        result = GateResult(policy=name, error=str(err))
    if junit_path is not None:
        try:
            write_junit(result, junit_path)
        except OSError as err:
            # A JUnit path that cannot be written is bad input too, never a crash (exit 1).
            return GateResult(policy=name, error=f"{junit_path}: cannot write the JUnit file: {err.strerror or err}")
    return result


def result_dict(result: GateResult) -> dict:
    """The gate's outcome as plain JSON-able data (``faceaudit gate --json``)."""
    return {
        "policy": result.policy,
        "status": result.status,
        "exit_code": result.exit_code,
        "error": result.error,
        "counts": result.counts(),
        "checks": [{"rule": c.rule_index + 1, "metric": c.rule.metric, "model": c.model, "target_fmr": c.target_fmr,
                    "group": c.group, "estimate": c.estimate, "ci_lo": c.ci_lo, "ci_hi": c.ci_hi,
                    "bound": c.rule.bound, "kind": c.rule.kind, "on": c.rule.on, "decision": c.decision,
                    "reason": c.reason} for c in result.checks],
    }


# ---------------------------------------------------------------------------------------------
# output


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
        rows.append([str(ch.rule_index + 1), ch.model, "" if ch.target_fmr is None else f"{ch.target_fmr:.0e}",
                     ch.group or "", ch.rule.metric, _fmt(ch.estimate), f"[{_fmt(ch.ci_lo)}, {_fmt(ch.ci_hi)}]",
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


# ---------------------------------------------------------------------------------------------
# Baseline policies: "did this model get less fair than the last one?" (models owner)
#
# A baseline policy has the same format, with metrics from the run-vs-baseline comparison
# (faceaudit.stats.compare): ``fnmr_change``, ``fmr_change``, ``fte_rate_change`` (per group and
# ``all``, run minus baseline) and ``fnmr_diff_change``, ``fmr_diff_change`` (each group's
# difference to the reference group, run's minus baseline's), ``fnmr_ratio_change``,
# ``fmr_ratio_change`` (each group's ratio to the reference group, run's over baseline's). Every
# change has a CI paired by the shared seeds, and the same pass/fail/inconclusive table applies.


def evaluate_baseline(run_root: str | Path, baseline_root: str | Path, policy: Policy,
                      model: Optional[str] = None, baseline_model: Optional[str] = None) -> GateResult:
    """Evaluate a baseline policy on the comparison of ``run_root`` against ``baseline_root``."""
    from faceaudit.stats.compare import compare_runs, comparison_summary

    table = compare_runs(baseline_root, run_root, model_a=baseline_model, model_b=model)
    return evaluate(comparison_summary(table), policy)


def check_baseline(run_root: str | Path, baseline_root: str | Path, policy_path: str | Path,
                   junit_path: str | Path | None = None, model: Optional[str] = None,
                   baseline_model: Optional[str] = None) -> GateResult:
    """Like :func:`check`, for a baseline policy; never raises for bad input (exit 2 in the result)."""
    name = Path(policy_path).stem
    try:
        policy = load_policy(policy_path)
        name = policy.name
        result = evaluate_baseline(run_root, baseline_root, policy, model, baseline_model)
    except BadInput as err:
        result = GateResult(policy=name, error=str(err))
    if junit_path is not None:
        write_junit(result, junit_path)
    return result
