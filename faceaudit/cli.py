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
annotate_app = typer.Typer(help="Collect human ratings of a run's faces in a local web app, and export them.", no_args_is_help=True)
app.add_typer(annotate_app, name="annotate")

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
    labels: Optional[Path] = typer.Option(None, "--labels", help="RUN/annotations.parquet: fit directions for the "
                                          "human image labels (age, gender, realism, ...) of a DCGAN run instead."),
) -> None:
    """Learn conditional attribute directions in the DCGAN latent space and write a versioned file.

    Samples latents, measures every attribute from pixels and landmarks, fits one linear direction
    per attribute and projects the others out (InterFaceGAN-style conditional directions).
    With --labels, fits one direction per human label question from the rated faces' latents.
    """
    if labels is not None:
        from faceaudit.generate.label_directions import fit_label_directions

        found = fit_label_directions(labels)
        for name, d in found.attributes.items():
            out_console.print(f"{name}: cross-validated R² {d.r2_cv:.3f}, step {d.step:.3g} latent units per label SD")
        for name, why in found.metadata["skipped"].items():
            out_console.print(f"{name}: skipped ({why})")
        out_console.print(f"label directions -> {found.save(out)}")
        return
    from faceaudit.generate.directions import fit_directions

    path = fit_directions(n_samples=n_samples, seed=seed, out=out, progress=progress)
    out_console.print(f"directions -> {path}")


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


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
