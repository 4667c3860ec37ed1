"""Baseline policies: "did this model get less fair than the last one?"

A baseline policy has the same format, with metrics from the run-vs-baseline comparison
(faceaudit.stats.compare): ``fnmr_change``, ``fmr_change``, ``fte_rate_change`` (per group and
``all``, run minus baseline) and ``fnmr_diff_change``, ``fmr_diff_change`` (each group's
difference to the reference group, run's minus baseline's), ``fnmr_ratio_change``,
``fmr_ratio_change`` (each group's ratio to the reference group, run's over baseline's). Every
change has a CI paired by the shared seeds, and the same pass/fail/inconclusive table applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from faceaudit.core.errors import BadInput
from faceaudit.gate.checks import evaluate
from faceaudit.gate.output import write_junit
from faceaudit.gate.policy import Policy, load_policy
from faceaudit.gate.result import GateResult

__all__ = ["evaluate_baseline", "check_baseline"]


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
