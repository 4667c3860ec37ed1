"""The Python entry points (what notebooks and the CLI call). Every function returns plain
DataFrames / paths and keeps no global state.

    from faceaudit import api
    ctx = api.audit("protocols/quick.yaml", "runs/quick")
    run = api.load_run("runs/quick")
    run.error_rates
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from faceaudit import pipeline
from faceaudit.core.errors import BadInput, FaceAuditError
from faceaudit.protocol import Protocol, load_protocol
from faceaudit.run import RESULT_TABLES, Run, load_run  # noqa: F401 (public names of the facade)

# ---------------------------------------------------------------------------------------------
# Reading a run directory: ``load_run`` and ``Run`` are faceaudit.run's (the one reader of a run's
# tables), imported above, so notebooks keep ``api.load_run``; it only reads files, so a finished
# run opens on a machine without the models or the generator.
#
# Stages. Each re-runs only what is out of date; see faceaudit.pipeline.


def _protocol(protocol: Protocol | str | Path) -> Protocol:
    return protocol if isinstance(protocol, Protocol) else load_protocol(protocol)


def audit(protocol: Protocol | str | Path, out: str | Path, progress: bool = True, force: bool = False,
          report: bool = True, models: Optional[list] = None, executor: str = "local",
          workers: Optional[int] = None, ray_address: Optional[str] = None) -> pipeline.StageContext:
    """Run (or resume) a whole audit into ``out``; returns which stages ran and which were skipped.

    ``executor`` (``local`` or ``ray``), ``workers`` and ``ray_address`` say where the embed stage's
    shards run (harness.executors); they change no table and no stage's inputs."""
    from faceaudit.harness.executors import get_executor

    protocol = _protocol(protocol)
    if executor == "local" and workers in (None, 1) and not ray_address:
        return pipeline.audit(protocol, out, progress=progress, force=force, models=models, report=report)
    with get_executor(executor, workers=workers, address=ray_address) as ex:
        return pipeline.audit(protocol, out, progress=progress, force=force, models=models, report=report, executor=ex)


def generate(protocol: Protocol | str | Path, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Render the protocol's faces; returns the faces table."""
    protocol = _protocol(protocol)
    run = pipeline.init_run(protocol, out)
    return pipeline.stage_generate(pipeline.StageContext(run=run, protocol=protocol, progress=progress))


def _ctx(run_root: str | Path, progress: bool = True) -> pipeline.StageContext:
    run, protocol = pipeline.open_run(run_root)
    return pipeline.StageContext(run=run, protocol=protocol, progress=progress)


def embed(run_root: str | Path, progress: bool = True, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    """Embed the run's faces with each model; returns {model name: embeddings table}."""
    return pipeline.stage_embed(_ctx(run_root, progress), models)


def score(run_root: str | Path, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    """Build pairs and score them with each model; returns {model name: scores table}."""
    ctx = _ctx(run_root)
    pipeline.stage_pairs(ctx)
    return pipeline.stage_score(ctx, models)


def analyze(run_root: str | Path) -> dict:
    """Manipulation check + statistics; writes RUN/results and returns the result tables."""
    ctx = _ctx(run_root)
    if ctx.protocol.dataset is None:  # the manipulation check is about the generator's edits
        pipeline.stage_manipulation(ctx)
    return pipeline.stage_analyze(ctx)


def import_dataset(importer: str, source: str | Path, out: str | Path, models: Optional[list[str]] = None,
                   reference: Optional[str] = None, **options) -> pd.DataFrame:
    """``faceaudit import``: read a dataset (faceaudit.importers) into a new run directory; returns the faces table.

    The run's protocol.yaml records the dataset (importer, source, design, groups, reference) and the
    models to audit (default dlib and SFace); then :func:`audit_run` (or the stage commands) finish the audit.
    """
    from faceaudit.importers import read_dataset, write_run
    from faceaudit.importers.base import protocol_for
    from faceaudit.protocol import parse_protocol
    from faceaudit.rundir import RunDir

    if importer == "scores":
        return import_scores(source, out, reference=reference)
    imported = read_dataset(importer, source, reference=reference, **options)
    protocol = protocol_for(imported, list(models or ["dlib", "sface"]))
    protocol = parse_protocol(protocol.resolved_dict(), where="import", check_models=True)
    run = RunDir(out)
    if run.protocol.exists() and run.protocol.read_text() != protocol.to_yaml():
        raise BadInput(f"{run.root}: already holds another run; import into a new directory")
    return write_run(imported, pipeline.init_run(protocol, out))


def import_scores(source: str | Path, out: str | Path, reference: Optional[str] = None) -> pd.DataFrame:
    """``faceaudit import scores``: a table of comparison scores (CSV or parquet) -> a new run directory.

    One row per comparison: ``identity_a``, ``identity_b``, ``kind`` (genuine|impostor), ``group``,
    ``score`` (higher = more similar); optional ``edit_attr``/``edit_level`` and ``model`` (default
    ``scores``). The run holds faces (placeholders: no images), pairs, scores and the models' enrolment
    status, and its protocol.yaml records the dataset (importer ``scores``, observational design); then
    :func:`audit_run` runs the analysis and the card (nothing to embed or score).

    Parameters
    ----------
    source : str or pathlib.Path
        The score file.
    out : str or pathlib.Path
        Run directory to create.
    reference : str, optional
        Reference group of the contrasts (default: the first group in sorted order).

    Returns
    -------
    pandas.DataFrame
        The faces table written (one placeholder face per identity, group and condition).

    Raises
    ------
    BadInput
        A bad score file (one line naming the file, the column and the first bad data row), or
        ``out`` already holding another run.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from faceaudit.stats.score_rates import simulate_score_pairs
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> simulate_score_pairs(n_identities=6, seed=0).to_csv(d / "scores.csv", index=False)
    >>> faces = import_scores(d / "scores.csv", d / "run")
    >>> int(faces["seed"].nunique()), load_run(d / "run").protocol.dataset.design
    (12, 'observational')
    """
    from faceaudit.importers.base import protocol_for
    from faceaudit.importers.scores import read_scores, write_scores_run
    from faceaudit.protocol import parse_protocol
    from faceaudit.rundir import RunDir

    imported = read_scores(source, reference=reference)
    protocol = protocol_for(imported, imported.models)
    # The models are names of the user's own pipeline, not loadable specs: check the schema only.
    protocol = parse_protocol(protocol.resolved_dict(), where="import", check_models=False)
    run = RunDir(out)
    if run.protocol.exists() and run.protocol.read_text() != protocol.to_yaml():
        raise BadInput(f"{run.root}: already holds another run; import into a new directory")
    return write_scores_run(imported, pipeline.init_run(protocol, out))


def audit_run(run_root: str | Path, progress: bool = True, report: bool = True) -> pipeline.StageContext:
    """Every stage after the faces exist (an imported run): embed, pairs, score, analyze, report.

    A run of imported scores (``faceaudit import scores``) has no images and its scores already exist:
    only analyze and report run."""
    from faceaudit.models.registry import load_model

    ctx = _ctx(run_root, progress)
    if ctx.protocol.dataset is not None and ctx.protocol.dataset.importer == "scores":
        pipeline.stage_analyze(ctx)
        if report:
            pipeline.stage_report(ctx)
        return ctx
    models = [load_model(s, device=ctx.protocol.device) for s in ctx.protocol.models]
    pipeline.stage_embed(ctx, models)
    pipeline.stage_pairs(ctx)
    pipeline.stage_score(ctx, models)
    if ctx.protocol.dataset is None:
        pipeline.stage_manipulation(ctx)
    pipeline.stage_analyze(ctx)
    if report:
        pipeline.stage_report(ctx)
    return ctx


def report(run_root: str | Path, baseline: str | Path | None = None, baseline_model: Optional[str] = None,
           out: str | Path | None = None) -> Path:
    """Render RUN/report.html (and results/summary.md); returns the report's path.

    With ``baseline`` (a run of the same protocol) the run is compared with it here
    (:func:`faceaudit.stats.compare.compare_runs`, the baseline as run A) and the card, with a
    comparison section, is written to ``out`` (default ``RUN/report_vs_<baseline>.html``);
    report.html is left as the report stage wrote it. Without ``baseline``, ``out`` writes the card
    there instead of running the report stage."""
    if baseline is None and out is None:
        return pipeline.stage_report(_ctx(run_root))
    from faceaudit.report.render import BaselineComparison, render_report

    if baseline is None:
        return render_report(run_root, out)
    table = compare(baseline, run_root, model_a=baseline_model)
    return render_report(run_root, out, comparison=BaselineComparison(Path(baseline).resolve().name, table))


def compare(run_a: str | Path, run_b: str | Path, model_a: Optional[str] = None,
            model_b: Optional[str] = None) -> pd.DataFrame:
    """Run B against run A (the baseline), each change with a CI paired by the shared seeds
    (:func:`faceaudit.stats.compare.compare_runs`; columns ``COMPARE_COLUMNS``)."""
    from faceaudit.stats.compare import compare_runs

    return compare_runs(run_a, run_b, model_a, model_b)


# ---------------------------------------------------------------------------------------------
# Choosing models from the command line (models owner).


def with_models(protocol: Protocol | str | Path, models: Optional[list[str]] = None,
                device: Optional[str] = None, where: str = "command line (--model/--device)") -> Protocol:
    """The protocol with its model list replaced by ``models`` and/or its device by ``device``.

    The result is what the run records in ``RUN/protocol.yaml``, so a run audited with
    ``--model sface --model my.pkg:factory`` says so. The new specs are checked like a protocol's
    (an unknown name or an unimportable plugin fails in a second, before any face is rendered).
    """
    from faceaudit.protocol import parse_protocol

    if not isinstance(protocol, Protocol):
        # The file's own model list is about to be replaced: do not require it to be runnable here.
        protocol = load_protocol(protocol, check_models=not models)
    if not models and device is None:
        return protocol
    data = protocol.resolved_dict()
    if models:
        dupes = sorted({m for m in models if list(models).count(m) > 1})
        if dupes:
            raise BadInput(f"{where}: model {dupes[0]!r} given twice")
        data["models"] = list(models)
    if device is not None:
        data["device"] = device
    return parse_protocol(data, where=where, check_models=bool(models))


def without_unavailable(protocol: Protocol, announce=None) -> Protocol:
    """The protocol minus what cannot run on this machine, each omission announced in one line.

    * built-in models whose weights are missing here (``faceaudit models`` says why);
    * perceived gender (protected) and the age edit, when the perceived-attribute classifiers
      (npm human-models: faceres, gender, age) were not fetched: the audit becomes skin-only.

    A model that would download its weights on first use is kept (its loader decides). For
    ``make audit`` on a machine where the npm registry could not be reached.
    """
    from faceaudit.models import human_models
    from faceaudit.models.registry import BUILTIN
    from faceaudit.protocol import parse_protocol

    say = announce or (lambda line: None)
    data = protocol.resolved_dict()
    kept = []
    for spec in protocol.models:
        entry = BUILTIN.get(spec)
        reason = None
        if entry is not None:
            try:
                reason = entry.available()
            except (FaceAuditError, ImportError) as err:
                reason = str(err)
        if reason and "download" not in reason:
            say(f"faceaudit: model {spec!r} left out: {reason}")
            continue
        kept.append(spec)
    if not kept:
        raise BadInput(f"{protocol.name}: none of the protocol's models {protocol.models} can run here")
    data["models"] = kept
    missing = next((r for r in (human_models.missing_reason(m) for m in ("faceres", "gender", "age")) if r), None)
    if missing and isinstance(data["protected"], list):
        dropped = [p["attribute"] for p in data["protected"] if p["attribute"] == "gender"]
        if dropped:
            data["protected"] = [p for p in data["protected"] if p["attribute"] != "gender"]
            if len(data["protected"]) == 1:
                data["protected"] = data["protected"][0]
    else:
        dropped = []
    if missing and any(e["attribute"] == "age" for e in data["edits"]):
        data["edits"] = [e for e in data["edits"] if e["attribute"] != "age"]
        dropped.append("age (edit)")
    if dropped:
        say(f"faceaudit: {', '.join(dropped)} unavailable, auditing the rest: {missing}")
    if kept == list(protocol.models) and not dropped:
        return protocol
    return parse_protocol(data, where=protocol.name, check_models=True)


def embed_with(run_root: str | Path, models: Optional[list[str]] = None, device: Optional[str] = None,
               progress: bool = True) -> dict[str, pd.DataFrame]:
    """``embed`` after replacing the run's model list and/or device (recorded in RUN/protocol.yaml)."""
    run, protocol = pipeline.open_run(run_root)
    if models or device is not None:
        protocol = with_models(protocol, models, device)
        pipeline.init_run(protocol, run.root)
    return pipeline.stage_embed(pipeline.StageContext(run=run, protocol=protocol, progress=progress))


# ---------------------------------------------------------------------------------------------
# Human ratings (faceaudit.annotate): collect, export, simulate.


def annotate_serve(run_root: str | Path, host: str = "127.0.0.1", port: int = 8000, raters: Optional[int] = None,
                   raters_per_item: int = 3, pairs_per_cell: int = 2, images_per_cell: int = 1, announce=print) -> None:
    """Serve the rating app for RUN (plans RUN/annotations.sqlite on first use; blocks until Ctrl-C)."""
    from faceaudit.annotate.plan import PlanSpec
    from faceaudit.annotate.serve import serve

    spec = None
    if raters is not None:
        spec = PlanSpec(n_raters=raters, raters_per_item=min(raters_per_item, raters), pairs_per_cell=pairs_per_cell,
                        images_per_cell=images_per_cell, seed=_protocol_seed(run_root))
    serve(run_root, host=host, port=port, spec=spec, announce=announce, export=lambda: annotate_export(run_root))


def _protocol_seed(run_root: str | Path) -> int:
    try:
        return load_protocol(Path(run_root) / "protocol.yaml").seed
    except Exception:  # the plan only needs a seed; a protocol problem is reported by the stages
        return 0


def annotate_export(run_root: str | Path) -> dict:
    """RUN/annotations.sqlite -> RUN/annotations.parquet and RUN/results/human_*.parquet; returns a summary."""
    from faceaudit.annotate.export import export_annotations

    return export_annotations(run_root)


def annotate_plan_raters(raters_per_pair: tuple[int, ...] = (3, 5, 8, 12), noise_sd: float = 0.12, bias_sd: float = 0.05,
                         n_pairs: int = 500, seed: int = 0) -> pd.DataFrame:
    """Simulated consensus CI width and coverage for each panel size (see faceaudit.annotate.simulate)."""
    from faceaudit.annotate.simulate import RaterModel, plan_raters

    if not raters_per_pair or min(raters_per_pair) < 2 or n_pairs < 10 or noise_sd < 0 or bias_sd < 0:
        raise BadInput("annotate plan: need panel sizes >= 2, at least 10 pairs and non-negative noise and bias")
    return plan_raters(n_pairs, tuple(raters_per_pair), RaterModel(noise_sd=noise_sd, bias_sd=bias_sd, seed=seed))
