"""The pipeline's log lines on stderr (``faceaudit <stage>: ...``)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)


def log(msg: str) -> None:
    console.print(f"[bold cyan]faceaudit[/] {msg}")
