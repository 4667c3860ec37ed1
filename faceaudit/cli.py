"""The ``faceaudit`` command line: thin commands over :mod:`faceaudit.api`.

Exit codes (DESIGN.md): 0 ok/pass, 1 gate failed, 2 bad input or usage, 3 inconclusive.
Every error a user can fix is printed as one line on stderr: ``error: <where>: <what>``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from faceaudit.errors import FaceAuditError

app = typer.Typer(
    name="faceaudit",
    help=(
        "Experimental bias audits of face-recognition models.\n\n"
        "A controlled-attribute generator renders every synthetic identity at every skin-tone level and "
        "edits one nuisance attribute at a time; the models under test are scored on genuine and matched "
        "impostor pairs; the statistics give per-group FMR/FNMR with seed-clustered CIs and paired causal "
        "contrasts; the result is an HTML model card.\n\n"
        "Typical use:  faceaudit audit protocols/default.yaml --out runs/default"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
directions_app = typer.Typer(help="Learn and inspect the generator's attribute directions.", no_args_is_help=True)
app.add_typer(directions_app, name="directions")
import_app = typer.Typer(help="Import a dataset (CausalFace, or labelled real photographs) as a run directory.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _fail(err: FaceAuditError) -> None:
    # One line on stderr, no traceback: the message already names what and where.
    err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
    raise typer.Exit(err.exit_code)


def handles_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FaceAuditError as err:
            _fail(err)
        except KeyboardInterrupt:
            err_console.print("interrupted: finished stages are kept; re-run the same command to resume")
            raise typer.Exit(130)

    return wrapper


RunArg = typer.Argument(..., help="Run directory (created by `audit` or `generate`).")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")


@app.command()
@handles_errors
def audit(
    protocol: Path = typer.Argument(..., help="Protocol YAML, e.g. protocols/default.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create or resume."),
    force: bool = typer.Option(False, "--force", help="Redo every stage even if it is up to date."),
    report: bool = typer.Option(True, "--report/--no-report", help="Render report.html at the end."),
    progress: bool = ProgressOpt,
) -> None:
    """Run the whole audit: generate -> embed -> pair+score -> analyze -> report.

    Finished stages whose inputs did not change are skipped, so re-running the same command resumes
    an interrupted audit and does no repeated work.
    """
    from faceaudit import api

    ctx = api.audit(protocol, out, progress=progress, force=force, report=report)
    out_console.print(f"ran: {', '.join(ctx.ran) or 'nothing'}; up to date: {', '.join(ctx.skipped) or 'nothing'}")
    if report:
        out_console.print(f"report: {ctx.run.report}")


@app.command()
@handles_errors
def validate(protocol: Path = typer.Argument(..., help="Protocol YAML to check.")) -> None:
    """Check a protocol and print it with every default filled in."""
    from faceaudit.protocol import load_protocol

    out_console.print(load_protocol(protocol).to_yaml(), end="")


@app.command()
@handles_errors
def generate(
    protocol: Path = typer.Argument(..., help="Protocol YAML."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory."),
    progress: bool = ProgressOpt,
) -> None:
    """Render the faces of a protocol into RUN/images and RUN/faces.parquet."""
    from faceaudit import api

    faces = api.generate(protocol, out, progress=progress)
    out_console.print(f"{len(faces)} faces, {faces['seed'].nunique()} seeds -> {out}/faces.parquet")


@app.command()
@handles_errors
def embed(run: Path = RunArg, progress: bool = ProgressOpt) -> None:
    """Embed every face with every model of the run's protocol (cached by image hash + model version)."""
    from faceaudit import api

    for name, emb in api.embed(run, progress=progress).items():
        out_console.print(f"{name}: {len(emb)} faces, {(emb['status'] != 'ok').sum()} failures to enrol")


@app.command()
@handles_errors
def score(run: Path = RunArg) -> None:
    """Build genuine/matched-impostor pairs and score them with every model."""
    from faceaudit import api

    for name, sc in api.score(run).items():
        out_console.print(f"{name}: {len(sc)} pairs scored")


@app.command()
@handles_errors
def analyze(run: Path = RunArg) -> None:
    """Error rates with seed-clustered CIs, causal contrasts, dose-response, fairness summaries."""
    from faceaudit import api

    api.analyze(run)
    out_console.print(f"results -> {Path(run) / 'results'}")


@app.command()
@handles_errors
def report(run: Path = RunArg) -> None:
    """Render the self-contained model card RUN/report.html (and results/summary.md)."""
    from faceaudit import api

    out_console.print(f"report: {api.report(run)}")


@app.command()
@handles_errors
def gate(
    run: Path = RunArg,
    policy: Path = typer.Option(..., "--policy", "-p", help="Policy YAML with bounds on summary metrics."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (for CI test reports)."),
) -> None:
    """Check a finished run against a fairness policy.

    Exit 0 pass, 1 fail (a bound is violated with confidence), 2 bad input, 3 inconclusive (the CI
    straddles a bound: collect more seeds).
    """
    from faceaudit import gate as gate_mod

    result = gate_mod.check(run, policy, junit_path=junit)
    out_console.print(gate_mod.render_text(result))
    raise typer.Exit(result.exit_code)


@app.command()
@handles_errors
def models() -> None:
    """List the models faceaudit knows, whether each can run here, and why not."""
    from faceaudit.models.registry import list_models

    table = Table("model", "available", "description / reason")
    for row in list_models().itertuples():
        table.add_row(row.name, "yes" if row.available else "no", row.description if row.available else row.reason)
    out_console.print(table)
    out_console.print("Your own model: --model / protocol `models: [package.module:factory]` (factory returns a FaceRecognizer).")


@directions_app.command("fit")
@handles_errors
def directions_fit(
    out: Path = typer.Option(Path("directions.npz"), "--out", "-o", help="Directions file to write."),
    n_samples: int = typer.Option(4000, "--n-samples", "-n", help="Random latents to render and measure."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latent sample."),
    progress: bool = ProgressOpt,
) -> None:
    """Learn conditional attribute directions in the DCGAN latent space and write a versioned file.

    Samples latents, measures every attribute from pixels and landmarks, fits one linear direction
    per attribute and projects the others out (InterFaceGAN-style conditional directions).
    """
    from faceaudit.generate.directions import fit_directions

    path = fit_directions(n_samples=n_samples, seed=seed, out=out, progress=progress)
    out_console.print(f"directions -> {path}")


# ---------------------------------------------------------------------------------------------
# faceaudit import causalface|folder


ImportOut = typer.Option(..., "--out", "-o", help="Run directory to create.")
ImportModels = typer.Option(None, "--model", "-m", help="Model to audit (repeatable; default dlib and sface).")
ImportRef = typer.Option(None, "--reference", help="Reference group, e.g. 'race=white|gender=male'.")
ImportAudit = typer.Option(False, "--audit/--no-audit", help="Also run embed, score, analyze and report.")


def _after_import(out: Path, faces, audit: bool, progress: bool) -> None:
    from faceaudit import api

    out_console.print(f"imported {len(faces)} faces of {faces['seed'].nunique()} identities in "
                      f"{faces['group'].nunique()} groups -> {out}")
    if audit:
        ctx = api.audit_run(out, progress=progress)
        out_console.print(f"report: {ctx.run.report}")
    else:
        out_console.print(f"next: faceaudit embed {out} && faceaudit score {out} && faceaudit analyze {out} && "
                          f"faceaudit report {out}   (or import with --audit)")


@import_app.command("causalface")
@handles_errors
def import_causalface(
    source: Path = typer.Argument(..., help="CausalFace root: final_picked_<attr>/seed_<N>/<race>_<gender>_<tag>_<value>.png"),
    out: Path = ImportOut,
    model: Optional[list[str]] = ImportModels,
    reference: Optional[str] = ImportRef,
    prototype_value: float = typer.Option(0.0, help="Attribute value of the unedited render (the prototype)."),
    audit: bool = ImportAudit,
    progress: bool = ProgressOpt,
) -> None:
    """CausalFace layout -> faces table (seeds, race x gender groups, edit levels); experimental design."""
    from faceaudit import api

    faces = api.import_dataset("causalface", source, out, models=model, reference=reference,
                               prototype_value=prototype_value)
    _after_import(out, faces, audit, progress)


@import_app.command("folder")
@handles_errors
def import_folder(
    source: Path = typer.Argument(..., help="CSV (path, identity, attribute columns) or DIR/<level>/<identity>/<image>."),
    out: Path = ImportOut,
    model: Optional[list[str]] = ImportModels,
    reference: Optional[str] = ImportRef,
    attribute: Optional[list[str]] = typer.Option(None, "--attribute", "-a",
                                                  help="Protected attribute column(s) of the CSV (default: all but "
                                                       "path and identity); for a folder, the name of its level."),
    audit: bool = ImportAudit,
    progress: bool = ProgressOpt,
) -> None:
    """Real photographs -> observational run (identity is the cluster; conclusions are correlational)."""
    from faceaudit import api

    opts = {}
    if attribute:
        if source.is_dir():
            opts["attribute"] = attribute[0]
        else:
            opts["attributes"] = list(attribute)
    faces = api.import_dataset("folder", source, out, models=model, reference=reference, **opts)
    _after_import(out, faces, audit, progress)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
