"""The stage commands: audit (every stage), validate, generate, embed, score, analyze, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from faceaudit.cli.app import (DeviceOpt, JsonOpt, ModelOpt, PolicyOpt, ProgressOpt, RunArg, app, echo, gate_line,
                               gate_verdict, handles_errors)


@app.command()
@handles_errors
def audit(
    protocol: Path = typer.Argument(..., help="Protocol YAML, e.g. protocols/default.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create or resume."),
    force: bool = typer.Option(False, "--force", help="Redo every stage even if it is up to date."),
    report: bool = typer.Option(True, "--report/--no-report", help="Render report.html at the end."),
    progress: bool = ProgressOpt,
    as_json: bool = JsonOpt,
    model: Optional[list[str]] = ModelOpt,
    device: Optional[str] = DeviceOpt,
    skip_unavailable: bool = typer.Option(
        False, "--skip-unavailable",
        help="Leave out what cannot run here (models without weights; perceived gender and the age edit without "
             "the npm classifiers), saying so in one line each, instead of failing. `make audit` uses it."),
    executor: str = typer.Option("local", "--executor",
                                 help="Where the embedding shards run: local or ray (pip install 'faceaudit[ray]'). "
                                      "Same tables either way; changing it redoes no stage."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Worker processes (local, default 1) or Ray actors (default: the cluster's CPUs)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="An existing Ray cluster: auto, HOST:6379 or ray://HOST:10001 "
                                                   "(default: start a local one with --workers CPUs)."),
    policy: Optional[Path] = PolicyOpt,
) -> None:
    """Run the whole audit: generate -> embed -> pair+score -> analyze -> gate -> report.

    Finished stages whose inputs did not change and whose outputs still match the sha256 recorded in
    RUN/manifest.json are skipped, so re-running the same command resumes an interrupted audit, does
    no repeated work, and redoes only what was damaged or deleted. Tables of models the protocol no
    longer names are moved to RUN/stale/.

    With a gate policy (--policy, else the protocol's analysis.policy) the gate stage writes
    RUN/results/gate.json and the card colours its headline against it. The audit exits 0 whatever
    the verdict (it prints it); `faceaudit gate RUN --policy FILE` is the command that exits 1 on a
    violated bound and 3 when inconclusive.
    """
    from faceaudit import api

    resolved = api.with_models(protocol, model, device)
    if skip_unavailable:
        resolved = api.without_unavailable(resolved, announce=lambda line: print(line, file=sys.stderr, flush=True))
    ctx = api.audit(resolved, out, progress=progress, force=force, report=report,
                    executor=executor, workers=workers, ray_address=ray_address, policy=policy)
    gate = gate_verdict(ctx.run.results / "gate.json")
    if as_json:
        echo(json.dumps({"run": str(ctx.run.root), "ran": ctx.ran, "up_to_date": ctx.skipped,
                          "report": str(ctx.run.report) if report else None, "gate": gate}))
        return
    echo(f"ran: {', '.join(ctx.ran) or 'nothing'}; up to date: {', '.join(ctx.skipped) or 'nothing'}")
    if gate is not None:
        echo(gate_line(gate))
    if report:
        echo(f"report: {ctx.run.report}")


@app.command()
@handles_errors
def validate(protocol: Path = typer.Argument(..., help="Protocol YAML to check.")) -> None:
    """Check a protocol (its schema and its models) and print it with every default filled in."""
    from faceaudit import api

    # Exact YAML: printing it and validating the printout gives the same text.
    sys.stdout.write(api.validate(protocol).to_yaml())


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
    echo(f"{len(faces)} faces, {faces['seed'].nunique()} seeds -> {out}/faces.parquet")


@app.command()
@handles_errors
def embed(run: Path = RunArg, progress: bool = ProgressOpt, model: Optional[list[str]] = ModelOpt,
          device: Optional[str] = DeviceOpt) -> None:
    """Embed every face with every model of the run's protocol (cached by image hash + model version)."""
    from faceaudit import api

    for name, emb in api.embed_with(run, model, device, progress=progress).items():
        echo(f"{name}: {len(emb)} faces, {(emb['status'] != 'ok').sum()} failures to enrol")


@app.command()
@handles_errors
def score(run: Path = RunArg) -> None:
    """Build genuine/matched-impostor pairs and score them with every model."""
    from faceaudit import api

    for name, sc in api.score(run).items():
        echo(f"{name}: {len(sc)} pairs scored")


@app.command()
@handles_errors
def analyze(run: Path = RunArg) -> None:
    """Error rates with seed-clustered CIs, causal contrasts, dose-response, fairness summaries."""
    from faceaudit import api

    api.analyze(run)
    echo(f"results -> {Path(run) / 'results'}")


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

    echo(f"report: {api.report(run, baseline=baseline, baseline_model=baseline_model)}")
