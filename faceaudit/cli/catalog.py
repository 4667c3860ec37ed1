"""What can run here: the model adapters (and fetching an InsightFace pack) and the generators."""

from __future__ import annotations

from typing import Optional

import typer

from faceaudit.cli.app import app, handles_errors, models_app, out_console


@models_app.callback()
@handles_errors
def models(ctx: typer.Context) -> None:
    """List every model adapter: version, where its weights are expected, whether they are there."""
    if ctx.invoked_subcommand is not None:
        return
    from faceaudit import api

    # One block per model (not a table): paths are long and must stay whole in CI logs.
    for row in api.list_models().itertuples():
        out_console.print(f"[bold]{row.name}[/]  {'available' if row.available else 'NOT available'}  version: {row.version}", soft_wrap=True)
        out_console.print(f"    {row.description}", soft_wrap=True)
        out_console.print(f"    weights: {row.weights} ({'present' if row.weights_present else 'missing'})", soft_wrap=True)
        if not row.available:
            out_console.print(f"    why not: {row.reason}", soft_wrap=True)
    out_console.print("Your own model: --model / protocol `models: [package.module:factory]` (factory returns a FaceRecognizer).")


@models_app.command("fetch")
@handles_errors
def models_fetch(
    name: str = typer.Argument(..., help="InsightFace pack: buffalo_l, buffalo_m, buffalo_s, buffalo_sc, antelopev2."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected sha256 of the zip (required where none is known)."),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this mirror instead of InsightFace's release."),
) -> None:
    """Download a model pack into $FACEAUDIT_MODELS and verify its checksum (needs internet)."""
    from faceaudit import api

    out_console.print(f"{name}: {api.fetch_model_pack(name, sha256=sha256, url=url)}")


@app.command()
@handles_errors
def generators() -> None:
    """List the face generators (backends), whether each is ready here, and why not."""
    from rich.table import Table

    from faceaudit import api

    table = Table("generator", "ready", "description", "detail")
    for row in api.list_generators().itertuples():
        table.add_row(row.name, "yes" if row.ready else "no", row.description, row.detail)
    out_console.print(table)
    out_console.print("Pick one in a protocol: `generator: {name: diffusion, model: <folder or hub id>}` (docs/generator.md).")
