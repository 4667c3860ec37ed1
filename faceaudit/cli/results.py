"""Commands on finished runs: gate (a policy's bounds, exit 0/1/3) and compare (two runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from faceaudit.cli.app import JsonOpt, RunArg, echo, error_line, app, handles_errors, out_console


@app.command()
@handles_errors
def gate(
    run: Path = RunArg,
    policy: Path = typer.Option(..., "--policy", "-p", help="Policy YAML with bounds on summary metrics."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (for CI test reports)."),
    as_json: bool = JsonOpt,
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", help="Baseline run of the same protocol: the policy's rules are on the changes against it "
                                 "(e.g. protocols/policies/baseline.yaml)."),
    baseline_model: Optional[str] = typer.Option(
        None, "--baseline-model", help="The baseline run's model to compare with (default: the same name)."),
) -> None:
    """Check a finished run against a fairness policy.

    Exit 0 pass, 1 fail (a bound is violated with confidence: the only way this command exits 1),
    2 bad input (one line on stderr: policy, run directory, summary or --junit path), 3 inconclusive
    (the CI straddles a bound: collect more seeds), 4 internal error.

    A rule applies at the protocol's target FMRs unless it names another operating point of
    analysis.thresholds: `threshold_source: fixed` (the deployed threshold) or
    `threshold_source: calibration_run` (thresholds set on a real calibration run).
    """
    from faceaudit import api

    result = api.gate(run, policy, junit=junit, baseline=baseline, baseline_model=baseline_model)
    if result.error is not None:
        error_line(result.error)
        raise typer.Exit(2)
    echo(api.format_gate_result(result, as_json=as_json))
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
    from faceaudit import api

    table = api.compare(run_a, run_b, model_a, model_b, out=out)
    for (ma, mb, t), part in table.groupby(["model_a", "model_b", "target_fmr"], sort=False):
        out_console.print(f"[bold]{ma} (A) -> {mb} (B)[/] at target FMR {t:g}, {part['ci_level'].iloc[0]:.0%} CIs")
        for r in part.itertuples():
            op = "/" if r.change_kind == "ratio" else "-"
            what = f"{r.metric} {r.group}" + (f" vs {r.reference}" if r.reference else "")
            out_console.print(f"  {what:<40} A {r.value_a:.4g}  B {r.value_b:.4g}  B{op}A {r.change:+.4g} "
                              f"[{r.ci_lo:.4g}, {r.ci_hi:.4g}]{' *' if r.significant else ''}", soft_wrap=True)
