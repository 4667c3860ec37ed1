"""``faceaudit annotate``: collect human ratings of a run's faces, export them, plan the panel size."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from faceaudit.cli.app import RunArg, annotate_app, handles_errors, out_console


@annotate_app.command("serve")
@handles_errors
def annotate_serve(
    run: Path = RunArg,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback unless you say otherwise)."),
    port: int = typer.Option(8000, "--port", help="TCP port (0 = any free port)."),
    raters: Optional[int] = typer.Option(None, "--raters", help="Number of raters (first start only; default 3)."),
    per_item: int = typer.Option(3, "--per-item", help="Raters per pair or image (first start only)."),
    pairs_per_cell: int = typer.Option(2, "--pairs-per-cell", help="Genuine and impostor pairs per group x edit cell."),
    images_per_cell: int = typer.Option(1, "--images-per-cell", help="Faces per group x edit cell for the image questions."),
) -> None:
    """Serve the rating web app for RUN; prints one personal link per rater and an admin link.

    Ratings go to RUN/annotations.sqlite as they arrive; stop with Ctrl-C and start again to resume.
    """
    from faceaudit import api

    api.annotate_serve(run, host=host, port=port, raters=raters, raters_per_item=per_item,
                       pairs_per_cell=pairs_per_cell, images_per_cell=images_per_cell,
                       announce=lambda line: print(line, flush=True))


@annotate_app.command("export")
@handles_errors
def annotate_export(run: Path = RunArg) -> None:
    """Write RUN/annotations.parquet and the human statistics (consensus identity, agreement, rater quality)."""
    from faceaudit import api

    s = api.annotate_export(run)
    out_console.print(f"{s['ratings']} ratings from {s['raters']} raters ({s['flagged_raters']} flagged by attention checks); "
                      f"{s['pairs_rated']} pairs with a consensus -> {', '.join(s['files'])}")


@annotate_app.command("plan")
@handles_errors
def annotate_plan(
    raters_per_pair: str = typer.Option("3,5,8,12", "--raters-per-pair", help="Panel sizes to compare, comma-separated."),
    noise: float = typer.Option(0.12, "--noise", help="Rating noise SD on the [0, 1] similarity scale."),
    bias: float = typer.Option(0.05, "--bias", help="Rater bias SD on the same scale."),
    n_pairs: int = typer.Option(500, "--pairs", help="Simulated pairs."),
) -> None:
    """Simulate raters to choose how many are needed per pair: consensus CI width and coverage per panel size."""
    from rich.table import Table

    from faceaudit import api

    try:
        ks = tuple(int(k) for k in raters_per_pair.split(","))
    except ValueError:
        raise typer.BadParameter("comma-separated integers, e.g. 3,5,8", param_hint="--raters-per-pair") from None
    t = api.annotate_plan_raters(ks, noise_sd=noise, bias_sd=bias, n_pairs=n_pairs)
    table = Table("raters per pair", "mean 95% CI width", "widest CI", "coverage of the truth")
    for r in t.itertuples():
        table.add_row(str(r.raters_per_pair), f"{r.mean_ci_width:.3f}", f"{r.max_ci_width:.3f}", f"{r.coverage:.1%}")
    out_console.print(table)
