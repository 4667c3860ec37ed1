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
ModelOpt = typer.Option(
    None, "--model", "-m",
    help="Model to test (repeatable): dlib, sface, insightface[:PACK], facenet, onnx:PATH, PATH.yaml (model spec), "
         "package.module:factory. Replaces the protocol's model list; the run's protocol.yaml records it.",
)
DeviceOpt = typer.Option(None, "--device", help="auto, cpu or cuda (replaces the protocol's device).")


@app.command()
@handles_errors
def audit(
    protocol: Path = typer.Argument(..., help="Protocol YAML, e.g. protocols/default.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create or resume."),
    force: bool = typer.Option(False, "--force", help="Redo every stage even if it is up to date."),
    report: bool = typer.Option(True, "--report/--no-report", help="Render report.html at the end."),
    progress: bool = ProgressOpt,
    model: Optional[list[str]] = ModelOpt,
    device: Optional[str] = DeviceOpt,
) -> None:
    """Run the whole audit: generate -> embed -> pair+score -> analyze -> report.

    Finished stages whose inputs did not change are skipped, so re-running the same command resumes
    an interrupted audit and does no repeated work.
    """
    from faceaudit import api

    ctx = api.audit(api.with_models(protocol, model, device), out, progress=progress, force=force, report=report)
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
def embed(run: Path = RunArg, progress: bool = ProgressOpt, model: Optional[list[str]] = ModelOpt,
          device: Optional[str] = DeviceOpt) -> None:
    """Embed every face with every model of the run's protocol (cached by image hash + model version)."""
    from faceaudit import api

    for name, emb in api.embed_with(run, model, device, progress=progress).items():
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
def report(
    run: Path = RunArg,
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", help="A baseline run of the same protocol: the card adds a comparison with it and is "
                                 "written to RUN/report_vs_<baseline>.html (report.html is left as it is)."),
    baseline_model: Optional[str] = typer.Option(None, "--baseline-model", help="The baseline run's model (default: same name)."),
) -> None:
    """Render the self-contained model card RUN/report.html (and results/summary.md)."""
    from faceaudit import api

    if baseline is not None:
        from faceaudit.report.render import render_report

        out_console.print(f"report: {render_report(run, baseline=baseline, baseline_model=baseline_model)}")
        return
    out_console.print(f"report: {api.report(run)}")


@app.command()
@handles_errors
def gate(
    run: Path = RunArg,
    policy: Path = typer.Option(..., "--policy", "-p", help="Policy YAML with bounds on summary metrics."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (for CI test reports)."),
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", help="Baseline run of the same protocol: the policy's rules are on the changes against it "
                                 "(e.g. protocols/policies/baseline.yaml)."),
    baseline_model: Optional[str] = typer.Option(
        None, "--baseline-model", help="The baseline run's model to compare with (default: the same name)."),
) -> None:
    """Check a finished run against a fairness policy.

    Exit 0 pass, 1 fail (a bound is violated with confidence), 2 bad input, 3 inconclusive (the CI
    straddles a bound: collect more seeds).
    """
    from faceaudit import gate as gate_mod

    if baseline is not None:
        result = gate_mod.check_baseline(run, baseline, policy, junit_path=junit, baseline_model=baseline_model)
    else:
        result = gate_mod.check(run, policy, junit_path=junit)
    out_console.print(gate_mod.render_text(result))
    raise typer.Exit(result.exit_code)


@app.command()
@handles_errors
def compare(
    run_a: Path = typer.Argument(..., help="Baseline run (A)."),
    run_b: Path = typer.Argument(..., help="Run to compare with it (B); same protocol."),
    model_a: Optional[str] = typer.Option(None, "--model-a", help="Model of run A (default: matched by name)."),
    model_b: Optional[str] = typer.Option(None, "--model-b", help="Model of run B (default: matched by name)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the table (.parquet or .csv)."),
) -> None:
    """Two runs side by side: per-group rates and group contrasts, B against A, each change with a CI
    paired by the shared seeds (* = the CI excludes no change)."""
    from faceaudit.stats.compare import compare_runs

    table = compare_runs(run_a, run_b, model_a, model_b)
    if out is not None:
        from faceaudit.rundir import write_table, write_text

        if out.suffix == ".csv":
            write_text(out, table.to_csv(index=False))
        else:
            write_table(out, table)
    for (ma, mb, t), part in table.groupby(["model_a", "model_b", "target_fmr"], sort=False):
        out_console.print(f"[bold]{ma} (A) -> {mb} (B)[/] at target FMR {t:g}, {part['ci_level'].iloc[0]:.0%} CIs")
        for r in part.itertuples():
            op = "/" if r.change_kind == "ratio" else "-"
            what = f"{r.metric} {r.group}" + (f" vs {r.reference}" if r.reference else "")
            out_console.print(f"  {what:<40} A {r.value_a:.4g}  B {r.value_b:.4g}  B{op}A {r.change:+.4g} "
                              f"[{r.ci_lo:.4g}, {r.ci_hi:.4g}]{' *' if r.significant else ''}", soft_wrap=True)


models_app = typer.Typer(help="The models faceaudit can audit; `models fetch PACK` downloads an InsightFace pack.",
                         invoke_without_command=True)
app.add_typer(models_app, name="models")


@models_app.callback()
@handles_errors
def models(ctx: typer.Context) -> None:
    """List every model adapter: version, where its weights are expected, whether they are there."""
    if ctx.invoked_subcommand is not None:
        return
    from faceaudit.models.registry import list_models

    # One block per model (not a table): paths are long and must stay whole in CI logs.
    for row in list_models().itertuples():
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
    from faceaudit.models.packs import fetch_pack

    out_console.print(f"{name}: {fetch_pack(name, sha256=sha256, url=url)}")


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


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
