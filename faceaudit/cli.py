"""The ``faceaudit`` command line: thin commands over :mod:`faceaudit.api`.

Exit codes (DESIGN.md): 0 ok/pass, 1 gate failed (nothing else exits 1), 2 bad input or usage,
3 inconclusive, 4 internal error. Every error a user can fix (bad files, paths, encodings,
permissions, a full disk) is one line on stderr: ``error: <where>: <what>``. An internal error prints
one line naming a log file that holds the traceback (``--debug`` prints the traceback instead).

Output meant for scripts never wraps: YAML, tables and summaries are written as plain text, and
``--json`` is offered where a result is printed.
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from faceaudit.core.errors import FaceAuditError

app = typer.Typer(
    name="faceaudit",
    help=(
        "Experimental bias audits of face-recognition models.\n\n"
        "A controlled-attribute generator renders every synthetic identity at every skin-tone level and "
        "edits one nuisance attribute at a time; the models under test are scored on genuine and matched "
        "impostor pairs; the statistics give per-group FMR/FNMR with seed-clustered CIs and paired causal "
        "contrasts; the result is an HTML model card.\n\n"
        "Typical use:  faceaudit audit protocols/default.yaml --out runs/default\n\n"
        "Exit codes: 0 ok/pass, 1 a fairness bound is violated (gate only), 2 bad input or usage "
        "(one line on stderr), 3 inconclusive, 4 internal error (traceback in a log file; --debug "
        "prints it)."
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


import_app = typer.Typer(help="Import a dataset (CausalFace, labelled real photographs, or your own comparison scores) "
                              "as a run directory.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

# Rich tables are for people at a terminal; piped or in CI they must not wrap at 80 columns.
out_console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INTERNAL = 4
_state = {"debug": False}


def _echo(text: str) -> None:
    """Plain text to stdout, exactly as given (no markup, no wrapping)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _error_line(text: str) -> None:
    # markup=False: a path or protocol value with [brackets] is printed as it is.
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(" ".join(str(text).split()), markup=False)


def _fail(err: FaceAuditError) -> None:
    # One line on stderr, no traceback: the message already names what and where.
    _error_line(str(err))
    raise typer.Exit(err.exit_code)


#: OS errors a user causes and can fix (paths, permissions, a full disk): exit 2, not an internal error.
_USER_OS_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOSPC,
                   errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP, errno.EMFILE, errno.EFBIG}


def _user_error(err: BaseException) -> Optional[str]:
    """A one-line message when ``err`` is a failure the user caused (not a bug in faceaudit)."""
    if isinstance(err, OSError) and err.errno in _USER_OS_ERRNOS:
        where = err.filename if err.filename is not None else "file system"
        extra = f" -> {err.filename2}" if getattr(err, "filename2", None) else ""
        return f"{where}{extra}: {err.strerror or err}"
    if isinstance(err, UnicodeDecodeError):
        return f"input is not UTF-8 text ({err.reason} at byte {err.start})"
    return None


def _internal_error(err: BaseException) -> None:
    tb = "".join(traceback.format_exception(err))
    if _state["debug"]:
        sys.stderr.write(tb)
        _error_line(f"internal error: {type(err).__name__}: {err}")
        raise typer.Exit(EXIT_INTERNAL)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = Path(os.environ.get("FACEAUDIT_LOG_DIR") or tempfile.gettempdir())
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, log = tempfile.mkstemp(prefix=f"faceaudit-crash-{stamp}-", suffix=".log", dir=log_dir)
        with os.fdopen(fd, "w") as f:
            f.write(f"faceaudit {' '.join(sys.argv[1:])}\n\n{tb}")
        where = f"traceback in {log}"
    except OSError:
        where = "re-run with --debug for the traceback"
    _error_line(f"internal error (a bug in faceaudit, exit 4): {type(err).__name__}: {err}; {where}")
    raise typer.Exit(EXIT_INTERNAL)


def handles_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except FaceAuditError as err:
            _fail(err)
        except KeyboardInterrupt:
            err_console.print("interrupted: finished stages are kept; re-run the same command to resume")
            raise typer.Exit(130)
        except Exception as err:  # noqa: BLE001 - the one place that classifies every failure
            msg = _user_error(err)
            if msg is not None:
                _error_line(msg)
                raise typer.Exit(2)
            _internal_error(err)

    return wrapper


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Print the traceback of an internal error (exit 4) "
                                     "instead of writing it to a log file.")) -> None:
    _state["debug"] = debug


RunArg = typer.Argument(..., help="Run directory (created by `audit` or `generate`).")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
JsonOpt = typer.Option(False, "--json", help="Print the result as one JSON object (for scripts).")
ModelOpt = typer.Option(
    None, "--model", "-m",
    help="Model to test (repeatable): dlib, sface, faceres, mobileface, insightface[:PACK], facenet, onnx:PATH, "
         "PATH.yaml (model spec), package.module:factory. Replaces the protocol's model list; the run's "
         "protocol.yaml records it.",
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
) -> None:
    """Run the whole audit: generate -> embed -> pair+score -> analyze -> report.

    Finished stages whose inputs did not change and whose outputs still match the sha256 recorded in
    RUN/manifest.json are skipped, so re-running the same command resumes an interrupted audit, does
    no repeated work, and redoes only what was damaged or deleted. Tables of models the protocol no
    longer names are moved to RUN/stale/.
    """
    from faceaudit import api

    resolved = api.with_models(protocol, model, device)
    if skip_unavailable:
        resolved = api.without_unavailable(resolved, announce=lambda line: print(line, file=sys.stderr, flush=True))
    ctx = api.audit(resolved, out, progress=progress, force=force, report=report,
                    executor=executor, workers=workers, ray_address=ray_address)
    if as_json:
        _echo(json.dumps({"run": str(ctx.run.root), "ran": ctx.ran, "up_to_date": ctx.skipped,
                          "report": str(ctx.run.report) if report else None}))
        return
    _echo(f"ran: {', '.join(ctx.ran) or 'nothing'}; up to date: {', '.join(ctx.skipped) or 'nothing'}")
    if report:
        _echo(f"report: {ctx.run.report}")


@app.command()
@handles_errors
def validate(protocol: Path = typer.Argument(..., help="Protocol YAML to check.")) -> None:
    """Check a protocol and print it with every default filled in."""
    from faceaudit.protocol import load_protocol

    # Exact YAML: printing it and validating the printout gives the same text.
    sys.stdout.write(load_protocol(protocol).to_yaml())


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
    _echo(f"{len(faces)} faces, {faces['seed'].nunique()} seeds -> {out}/faces.parquet")


@app.command()
@handles_errors
def embed(run: Path = RunArg, progress: bool = ProgressOpt, model: Optional[list[str]] = ModelOpt,
          device: Optional[str] = DeviceOpt) -> None:
    """Embed every face with every model of the run's protocol (cached by image hash + model version)."""
    from faceaudit import api

    for name, emb in api.embed_with(run, model, device, progress=progress).items():
        _echo(f"{name}: {len(emb)} faces, {(emb['status'] != 'ok').sum()} failures to enrol")


@app.command()
@handles_errors
def score(run: Path = RunArg) -> None:
    """Build genuine/matched-impostor pairs and score them with every model."""
    from faceaudit import api

    for name, sc in api.score(run).items():
        _echo(f"{name}: {len(sc)} pairs scored")


@app.command()
@handles_errors
def analyze(run: Path = RunArg) -> None:
    """Error rates with seed-clustered CIs, causal contrasts, dose-response, fairness summaries."""
    from faceaudit import api

    api.analyze(run)
    _echo(f"results -> {Path(run) / 'results'}")


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

    _echo(f"report: {api.report(run, baseline=baseline, baseline_model=baseline_model)}")


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
    """
    from faceaudit import gate as gate_mod

    if baseline is not None:
        result = gate_mod.check_baseline(run, baseline, policy, junit_path=junit, baseline_model=baseline_model)
    else:
        result = gate_mod.check(run, policy, junit_path=junit)
    if result.error is not None:
        _error_line(result.error)
        raise typer.Exit(2)
    _echo(json.dumps(gate_mod.result_dict(result)) if as_json else gate_mod.render_text(result))
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

    table = api.compare(run_a, run_b, model_a, model_b)
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


@app.command()
@handles_errors
def generators() -> None:
    """List the face generators (backends), whether each is ready here, and why not."""
    from faceaudit.generate.registry import list_generators

    from rich.table import Table

    table = Table("generator", "ready", "description", "detail")
    for row in list_generators().itertuples():
        table.add_row(row.name, "yes" if row.ready else "no", row.description, row.detail)
    out_console.print(table)
    out_console.print("Pick one in a protocol: `generator: {name: diffusion, model: <folder or hub id>}` (docs/generator.md).")


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
    from faceaudit.generate.directions import load_directions
    from faceaudit.generate.perceived_directions import learn_perceived_directions

    found = learn_perceived_directions(load_directions(base), n_samples=n_samples, progress=progress)
    for name in ("gender", "age"):
        d = found[name]
        out_console.print(f"{name}: cross-validated R\u00b2 {d.r2_cv:.3f}, step {d.step:.3g}, leakage "
                          + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(d.leakage.items()) if k != name))
    out_console.print(f"directions -> {found.save(out)}")


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


# ---------------------------------------------------------------------------------------------
# faceaudit import causalface|folder|scores


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


@import_app.command("scores")
@handles_errors
def import_scores(
    source: Path = typer.Argument(..., help="CSV or parquet, one row per comparison: identity_a, identity_b, kind "
                                            "(genuine|impostor), group, score (higher = more similar); optional "
                                            "edit_attr, edit_level, model."),
    out: Path = ImportOut,
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference group (default: the first in sorted order)."),
    audit: bool = typer.Option(False, "--audit/--no-audit", help="Also run analyze and report."),
    progress: bool = ProgressOpt,
) -> None:
    """Your own comparison scores -> observational run (identity is the cluster; no images, nothing to embed)."""
    from faceaudit import api

    faces = api.import_scores(source, out, reference=reference)
    out_console.print(f"imported the scores of {faces['seed'].nunique()} identities in {faces['group'].nunique()} "
                      f"groups -> {out}")
    if audit:
        ctx = api.audit_run(out, progress=progress)
        out_console.print(f"report: {ctx.run.report}")
    else:
        out_console.print(f"next: faceaudit analyze {out} && faceaudit report {out}   (or import with --audit)")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
