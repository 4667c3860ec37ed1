"""Formatted tables the model card shows, shared by every part of the card (``card``, ``human``,
``render``): a header, rows of strings and which columns are numeric. Plain data, no computing."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Table"]


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
