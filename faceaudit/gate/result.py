"""What a gate decided: one :class:`Check` per (rule, model, target FMR, group), gathered in a
:class:`GateResult` whose status and exit code follow DESIGN.md (1 only for a failed bound)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from faceaudit.gate.policy import Rule

__all__ = ["PASS", "FAIL", "INCONCLUSIVE", "EXIT", "Check", "GateResult", "format_value"]

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
EXIT = {PASS: 0, FAIL: 1, "bad_input": 2, INCONCLUSIVE: 3}


def format_value(x: Optional[float]) -> str:
    """A summary value as the gate prints it (``n/a`` when it could not be estimated)."""
    return "n/a" if x is None else f"{x:.4g}"


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
