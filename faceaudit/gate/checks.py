"""Evaluating a policy on a run's ``results/summary.json`` (the decision table is in
:mod:`faceaudit.gate`'s docstring), and :func:`check`, which also writes the JUnit file."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Optional

from faceaudit.core.config import read_text
from faceaudit.core.errors import BadInput
from faceaudit.gate.output import write_junit
from faceaudit.gate.policy import Policy, load_policy
from faceaudit.gate.result import FAIL, INCONCLUSIVE, PASS, Check, GateResult, format_value

__all__ = ["load_summary", "decide", "evaluate", "check"]


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
        summary = json.loads(read_text(path, "summary"))
    except json.JSONDecodeError as err:
        raise BadInput(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("models"), dict):
        raise BadInput(f"{path}: no 'models' mapping; not a faceaudit summary")
    return summary


def decide(estimate: Optional[float], lo: Optional[float], hi: Optional[float], kind: str, bound: float,
           on: str, ci_level: float = 0.95) -> tuple[str, str]:
    """``(decision, reason)`` for one value against one bound (see the module docstring table)."""
    pct = f"{ci_level:.0%}"
    ci = f"{pct} CI [{format_value(lo)}, {format_value(hi)}]"
    op, nop = ("<=", ">") if kind == "max" else (">=", "<")
    needed = {"estimate": estimate, "ci_upper": hi, "ci_lower": lo}[on]
    if needed is None or (on != "estimate" and (lo is None or hi is None)):
        return INCONCLUSIVE, f"not estimable (value is null in summary.json; estimate {format_value(estimate)}, {ci})"

    def ok(x: float) -> bool:
        return x <= bound if kind == "max" else x >= bound

    est_s = f"estimate {format_value(estimate)}, {ci}"
    if on == "estimate":
        if ok(estimate):
            return PASS, f"estimate {format_value(estimate)} {op} {bound:g} ({ci})"
        return FAIL, f"estimate {format_value(estimate)} {nop} {bound:g} ({ci})"
    conservative = (kind == "max" and on == "ci_upper") or (kind == "min" and on == "ci_lower")
    near, far = (hi, lo) if kind == "max" else (lo, hi)  # near = the end that must satisfy the bound
    if conservative:
        if ok(near):
            return PASS, f"whole {ci} {op} {bound:g} ({est_s})"
        if not ok(far):
            return FAIL, f"whole {ci} {nop} {bound:g}: confidently violated ({est_s})"
        return INCONCLUSIVE, (f"{ci} straddles {kind} {bound:g} (estimate {format_value(estimate)}): "
                              f"the data cannot tell; more seeds would narrow the interval")
    # lenient: fail only when the far end also violates the bound
    if ok(far):
        return PASS, f"{'lower' if kind == 'max' else 'upper'} CI bound {format_value(far)} {op} {bound:g} ({est_s})"
    return FAIL, f"whole {ci} {nop} {bound:g}: confidently violated ({est_s})"


def _lookup(model_block: dict, key: Optional[str], metric: str) -> Optional[Any]:
    block = model_block.get(key) if key is not None else model_block
    value = block.get(metric) if isinstance(block, dict) else None
    return value if isinstance(value, dict) else None


def _fmr_keys(model_block: dict) -> dict[str, Optional[float]]:
    # a fixed threshold's block has no target FMR (null)
    return {k: (None if v["target_fmr"] is None else float(v["target_fmr"])) for k, v in model_block.items()
            if isinstance(v, dict) and "target_fmr" in v and "threshold" in v}


def _operating_point_block(model_block: dict, source: str, where: str, model: str) -> dict:
    """The blocks of one extra operating point (summary.json ``operating_points``), or one BadInput line."""
    points = model_block.get("operating_points") or {}
    if source not in points:
        raise BadInput(f"{where}: threshold_source {source!r} was not analysed for model {model} "
                       f"(set analysis.thresholds in the protocol; run has {sorted(points) or 'none'})")
    return points[source]


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
            if rule.threshold_source != "target_fmr":
                block = _operating_point_block(block, rule.threshold_source, where, m)
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
                targets = sorted(keys, key=lambda k: -1.0 if keys[k] is None else keys[k])
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
