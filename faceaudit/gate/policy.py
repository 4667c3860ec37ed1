"""Gate policies: the schema (:class:`Policy`, :class:`Rule`) and reading a policy file.

Unknown keys are errors; a policy file is read with YAML 1.2 booleans, so ``on: ci_upper`` stays a
key (YAML 1.1 reads ``on`` as True). Every problem is one BadInput line naming the file and key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from faceaudit.core.config import format_validation_error, load_yaml
from faceaudit.core.errors import BadInput

__all__ = ["Rule", "Policy", "load_policy", "parse_policy"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: str
    model: str = "*"
    target_fmr: Optional[float] = None
    #: the operating point the bound applies to (docs/statistics.md, "Operating points")
    threshold_source: Literal["target_fmr", "fixed", "calibration_run"] = "target_fmr"
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
        at = "" if self.threshold_source == "target_fmr" else f" at the {self.threshold_source.replace('_', ' ')} threshold"
        return f"{self.metric} {op} {self.bound:g} (on {self.on}){at}"


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


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file; every failure is a one-line BadInput."""
    path = Path(path)
    return parse_policy(load_yaml(path, "policy file", yaml12_bools=True), str(path))


def parse_policy(data: Any, where: str = "policy") -> Policy:
    """Validate a policy mapping (``where`` prefixes the error messages)."""
    if not isinstance(data, dict):
        raise BadInput(f"{where}: a policy must be a YAML mapping with a 'rules' list")
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        raise BadInput(format_validation_error(err, where)) from None
