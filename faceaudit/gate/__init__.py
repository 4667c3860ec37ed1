"""Policy gate for CI: compare a run's ``results/summary.json`` with bounds from a policy YAML.

Policy file (unknown keys are errors)::

    name: default                # optional
    rules:
      - metric: fnmr_max_min_ratio   # a key of summary.json (see docs/statistics.md)
        model: "*"                   # fnmatch pattern over the run's models (default "*")
        target_fmr: 1e-3             # operating point; omitted = every target FMR of the run
        threshold_source: target_fmr # target_fmr (default) | fixed | calibration_run: the protocol's
                                     # analysis.thresholds operating point the bound applies to
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

The package, by job: :mod:`~faceaudit.gate.policy` (schema and loading), :mod:`~faceaudit.gate.checks`
(evaluation against summary.json, :func:`check`), :mod:`~faceaudit.gate.output` (JUnit, JSON, text)
and :mod:`~faceaudit.gate.baseline` (rules on the comparison with a baseline run).
"""

from faceaudit.gate.baseline import check_baseline, evaluate_baseline
from faceaudit.gate.checks import check, decide, evaluate, load_summary
from faceaudit.gate.output import HEADER, junit_xml, render_rich, render_text, result_dict, write_junit
from faceaudit.gate.policy import Policy, Rule, load_policy, parse_policy
from faceaudit.gate.result import EXIT, FAIL, INCONCLUSIVE, PASS, Check, GateResult

__all__ = [
    "check", "check_baseline", "evaluate", "evaluate_baseline", "decide", "load_summary",
    "load_policy", "parse_policy", "Policy", "Rule", "Check", "GateResult", "PASS", "FAIL", "INCONCLUSIVE", "EXIT",
    "junit_xml", "write_junit", "result_dict", "render_text", "render_rich", "HEADER",
]
