"""Formatted tables the model card shows, shared by every part of the card (``card``,
``evaluation``, ``human``, ``render``): a header, rows of strings and which columns are numeric;
``format_table`` turns any results table into one. Formatting only, no computing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import pandas as pd

from faceaudit.report import fmt
from faceaudit.report.provenance import redact_paths

__all__ = ["Table", "format_table", "with_ci_cell", "json_value"]


@dataclass
class Table:
    """A formatted table: header cells and rows of strings; ``numeric`` marks right-aligned columns.

    Examples
    --------
    >>> t = Table(["group", "FNMR"], [["light", "1.2%"]], [False, True])
    >>> t.columns, t.numeric
    (['group', 'FNMR'], [False, True])
    >>> Table(["a"], []).numeric
    [False]
    """

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = [False] * len(self.columns)


def format_table(df: pd.DataFrame, columns: Optional[list[str]] = None, rename: Optional[dict] = None) -> Table:
    """Format any results table: ``x`` with ``x_lo``/``x_hi`` (or ``ci_lo``/``ci_hi`` next to ``estimate``)
    becomes one "x [lo, hi]" column; rates read as %, p-values as 0.008 / <0.001."""
    rename = rename or {}
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    out_cols, getters, numeric = [], [], []
    consumed = set()
    for c in cols:
        if c in consumed:
            continue
        lo, hi = f"{c}_lo", f"{c}_hi"
        if c == "estimate" and {"ci_lo", "ci_hi"} <= set(df.columns):
            lo, hi = "ci_lo", "ci_hi"
        elif c.endswith("_rate") and f"{c[:-5]}_lo" in df.columns:  # fte_rate -> fte_lo / fte_hi
            lo, hi = f"{c[:-5]}_lo", f"{c[:-5]}_hi"
        if lo in df.columns and hi in df.columns:
            consumed |= {lo, hi}
            getters.append(lambda r, c=c, lo=lo, hi=hi: with_ci_cell(c, r[c], r[lo], r[hi]))
        else:
            getters.append(lambda r, c=c: fmt.cell(c, r[c]))
        out_cols.append(rename.get(c, c.replace("_", " ")))
        numeric.append(pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))
    rows = [[g(r) for g in getters] for _, r in df.iterrows()]
    return Table(out_cols, rows, numeric)


def with_ci_cell(col: str, x: Any, lo: Any, hi: Any) -> str:
    point = fmt.cell(col, x)
    if fmt._missing(lo) or fmt._missing(hi):
        return point
    return f"{point} [{fmt.cell(col, lo)}, {fmt.cell(col, hi)}]"


def json_value(v: Any) -> str:
    """A metadata value as card text; absolute paths are redacted (:mod:`faceaudit.report.provenance`)."""
    # absolute paths (weights, directions) become package · version · file · hash: the card is
    # shared, the paths stay in manifest.json (faceaudit.report.provenance)
    if isinstance(v, (dict, list)):
        return redact_paths(json.dumps(v, sort_keys=True, default=str))
    return redact_paths(str(v))
