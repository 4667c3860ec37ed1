"""Number formatting for the model card and summary.md: rates as percentages, CIs in brackets.

One place for these rules so the HTML card, the Markdown summary and the tests agree on how a
number reads (a test looks for ``fmt.pct(x)`` of a table value in the page).
"""

from __future__ import annotations

import math
from typing import Any

#: column names (or suffixes) holding proportions, shown as percentages
RATE_COLUMNS = ("fmr", "fnmr", "gfnmr", "fte_rate", "fte", "eer", "fnmr_at_group_threshold")


def _missing(x: Any) -> bool:
    try:
        return x is None or (isinstance(x, float) and math.isnan(x)) or bool(x != x)
    except (TypeError, ValueError):
        return False


def pct(x: Any) -> str:
    """A proportion as a percentage with precision that suits its size: 12.3%, 4.56%, 0.123%."""
    if _missing(x):
        return "–"
    v = float(x) * 100
    if v == 0:
        return "0%"
    a = abs(v)
    if a >= 10:
        return f"{v:.1f}%"
    if a >= 1:
        return f"{v:.2f}%"
    # three significant digits for small rates (target FMRs like 0.1% or 0.01%)
    digits = min(6, 2 - int(math.floor(math.log10(a))))
    return f"{v:.{digits}f}%"


def pp(x: Any) -> str:
    """A difference of proportions in percentage points, signed: +18.8 pp."""
    if _missing(x):
        return "–"
    v = float(x) * 100
    if v == 0:
        return "0 pp"
    if abs(v) >= 10:
        return f"{v:+.1f} pp"
    return f"{v:+.2f} pp"


def num(x: Any, sig: int = 3) -> str:
    """A real number with ``sig`` significant digits (no scientific notation for ordinary sizes)."""
    if _missing(x):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    v = float(x)
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-4:
        return f"{v:.{sig - 1}e}"
    digits = max(0, sig - 1 - int(math.floor(math.log10(a))))
    return f"{v:.{digits}f}"


def signed(x: Any, sig: int = 3) -> str:
    s = num(x, sig)
    return s if s.startswith("-") or s == "–" else "+" + s


def pvalue(p: Any) -> str:
    if _missing(p):
        return "–"
    p = float(p)
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def ci(lo: Any, hi: Any, f=pct) -> str:
    """A confidence interval in brackets with the point formatter ``f``: [1.20%, 4.56%]."""
    if _missing(lo) or _missing(hi):
        return ""
    return f"[{f(lo)}, {f(hi)}]"


def with_ci(x: Any, lo: Any, hi: Any, f=pct) -> str:
    c = ci(lo, hi, f)
    return f"{f(x)} {c}" if c else f(x)


RATE_NAMES = ("fmr", "fnmr", "gfnmr", "fte", "fte_rate")


def metric_kind(metric: str) -> str:
    """How a metric's values read: ``ratio`` (2.20×), ``rate_diff`` (+4.17 pp), ``rate`` (4.17%) or ``number``.

    Names follow results/contrasts and results/fairness: ``fnmr_diff``, ``fnmr_ratio``,
    ``fnmr_max_min_ratio``, ``fmr_max_diff``, ``fte_rate_diff``, ``ir`` (inequity rate), ...
    """
    m = str(metric).lower().removesuffix("_interaction")  # an interaction reads like its metric's contrast
    if m == "fnmr" or m == "fmr":
        return "rate_diff"  # fnmr_interaction: a difference of differences of rates
    if m == "genuine_score":
        return "number"
    if m.endswith("ratio") or m == "ir":
        return "ratio"
    if m.endswith("_diff"):
        return "rate_diff" if m.removesuffix("_diff").removesuffix("_max") in RATE_NAMES else "number"
    return "rate" if m in RATE_NAMES else "number"


def is_rate_metric(metric: str) -> bool:
    """True when a metric's values are proportions or differences of proportions (shown in % / pp)."""
    return metric_kind(metric) in ("rate", "rate_diff")


def ratio(x: Any) -> str:
    if _missing(x):
        return "–"
    v = float(x)
    if math.isinf(v):
        return "∞"
    return f"{v:.2f}×" if v < 100 else f"{v:.0f}×"


def metric_value(metric: str, x: Any) -> str:
    """A metric's value formatted by its kind (see ``metric_kind``)."""
    kind = metric_kind(metric)
    if kind == "ratio":
        return ratio(x)
    if kind == "rate_diff":
        return pp(x)
    if kind == "rate":
        return pct(x)
    return signed(x) if str(metric).endswith("_diff") else num(x)


def metric_formatter(metric: str):
    return lambda x: metric_value(metric, x)


def level(x: Any) -> str:
    """An edit level as it is written in the protocol: -2, -1, +1, +2 (0 is the prototype)."""
    if _missing(x):
        return "all"
    v = float(x)
    if v == 0:
        return "0"
    return f"{v:+g}"


def group_label(group: str) -> str:
    """``skin=dark`` -> ``dark``, ``race=black|gender=female`` -> ``black female``: the card names the
    protected attribute once, in its header."""
    return " ".join(p.split("=", 1)[1] if "=" in p else p for p in str(group).split("|"))


def cell(column: str, value: Any) -> str:
    """Format one value of a generic results table by its column name."""
    c = column.lower()
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return "yes" if bool(value) else "no"
    if isinstance(value, str):
        return value
    if _missing(value):
        return "–"
    if c in ("p", "p_value", "p_adjusted", "pvalue", "p_adj") or c.startswith("p_"):
        return pvalue(value)
    if c in ("edit_level", "level") and isinstance(value, (int, float)):
        return level(value)
    base = c[:-3] if c.endswith(("_lo", "_hi")) else c
    if base in RATE_COLUMNS or base.endswith(("_rate", "fmr", "fnmr")):
        return pct(value)
    if c == "n" or c.startswith("n_"):
        try:
            return f"{int(value):,}"
        except (TypeError, ValueError):
            return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    # integer-valued numbers (counts stored as float) read as integers
    return f"{int(v):,}" if v.is_integer() and abs(v) < 1e6 else num(v)


def count(k: Any, n: Any) -> str:
    """Events out of trials as the card prints them next to a rate: ``43/35,473``; ``–`` when unknown.

    Examples
    --------
    >>> count(43, 35473)
    '43/35,473'
    >>> count(float("nan"), 10)
    '–'
    """
    if _missing(k) or _missing(n):
        return "–"
    return f"{int(k):,}/{int(n):,}"


def rate_count(x: Any, k: Any = None, n: Any = None) -> str:
    """A rate with its counts: ``0.121% (43/35,473)``; the rate alone when the counts were not written.

    Examples
    --------
    >>> rate_count(43 / 35473, 43, 35473)
    '0.121% (43/35,473)'
    >>> rate_count(0.25)
    '25.0%'
    """
    if _missing(k) or _missing(n):
        return pct(x)
    return f"{pct(x)} ({count(k, n)})"
