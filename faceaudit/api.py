"""The Python entry points (what notebooks and the CLI call). Every function returns plain
DataFrames / paths / results and keeps no global state; nothing inside faceaudit imports this module.

    from faceaudit import api
    ctx = api.audit("protocols/quick.yaml", "runs/quick")
    run = api.load_run("runs/quick")
    run.error_rates

Stages re-run only what is out of date (:mod:`faceaudit.pipeline`). Every failure a user can fix
raises :class:`~faceaudit.core.errors.BadInput` with one line naming the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pandas as pd

from faceaudit import pipeline
from faceaudit.core.errors import BadInput
from faceaudit.protocol import Protocol, load_protocol, parse_protocol
from faceaudit.run import Run, load_run  # noqa: F401 (public names of the facade)

if TYPE_CHECKING:  # the gate is imported when it is used
    from faceaudit.gate import GateResult

__all__ = [
    "Run", "load_run",
    "validate", "with_models", "without_unavailable",
    "audit", "generate", "embed", "embed_with", "score", "analyze", "report", "import_dataset", "audit_run",
    "import_scores", "compare", "gate", "format_gate_result",
    "list_models", "fetch_model_pack", "list_generators",
    "fit_directions", "fit_label_directions", "fit_perceived_directions",
    "annotate_serve", "annotate_export", "annotate_plan_raters",
]

# ---------------------------------------------------------------------------------------------
# Reading a run directory: ``load_run`` and ``Run`` are faceaudit.run's (the one reader of a run's
# tables), imported above, so notebooks keep ``api.load_run``; it only reads files, so a finished
# run opens on a machine without the models or the generator.


# ---------------------------------------------------------------------------------------------
# Protocols and their models. The schema (faceaudit.protocol) does not resolve model specs; these
# functions check them too, before anything is written.


def _check_models(protocol: Protocol, where: str) -> None:
    from faceaudit.models.registry import check_model_specs

    check_model_specs(protocol.models, where)
    _check_threshold_models(protocol, where)


def _check_threshold_models(protocol: Protocol, where: str) -> None:
    """A fixed threshold (``analysis.thresholds``) must name one of the protocol's models. A plugin or
    ONNX model's name is only known once it is built, so with one of those the analysis checks instead."""
    from faceaudit.models.registry import BUILTIN
    from faceaudit.stats.operating_points import check_fixed_thresholds

    fixed = protocol.analysis.fixed_thresholds
    if not fixed or not all(spec.split(":")[0] in BUILTIN for spec in protocol.models):
        return
    names = list(protocol.models) + [s.split(":")[0] for s in protocol.models if s.split(":")[0] not in protocol.models]
    check_fixed_thresholds(fixed, names, where)


def validate(protocol: str | Path) -> Protocol:
    """Read a protocol file and check it: the schema, and that every model it names resolves here.

    What ``faceaudit validate`` prints (``validate(path).to_yaml()``) is the protocol with every
    default filled in, exactly as a run records it in ``RUN/protocol.yaml``.

    Parameters
    ----------
    protocol : str or Path
        The protocol YAML file.

    Returns
    -------
    Protocol
        The resolved protocol.

    Raises
    ------
    BadInput
        One line naming the file and the key (``p.yaml: models.1: unknown model ...``).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "p.yaml"
    >>> _ = path.write_text("name: tiny\\nn_seeds: 4\\nedits: [{attribute: yaw, levels: [-1, 1]}]\\n")
    >>> validate(path).models
    ['dlib', 'sface']
    >>> _ = path.write_text("name: tiny\\nn_seeds: 4\\nedits: [{attribute: yaw, levels: [-1, 1]}]\\nmodels: [resnet9000]\\n")
    >>> validate(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: .../p.yaml: models.0: unknown model 'resnet9000' (known: dlib, sface, ...)
    """
    proto = load_protocol(protocol)
    _check_models(proto, str(protocol))
    return proto


def _protocol(protocol: Protocol | str | Path) -> Protocol:
    # A Protocol object's models are checked by pipeline.audit before it writes anything.
    return protocol if isinstance(protocol, Protocol) else validate(protocol)


def with_models(protocol: Protocol | str | Path, models: Optional[list[str]] = None,
                device: Optional[str] = None, where: str = "command line (--model/--device)") -> Protocol:
    """The protocol with its model list replaced by ``models`` and/or its device by ``device``.

    The result is what the run records in ``RUN/protocol.yaml``, so a run audited with
    ``--model sface --model my.pkg:factory`` says so. The new specs are checked like a protocol's
    (an unknown name or an unimportable plugin fails in a second, before any face is rendered), and
    a device this machine does not have (``cuda`` without a GPU) is refused before anything is written.

    Parameters
    ----------
    protocol : Protocol, str or Path
        A protocol or its file. A file's own model list is checked only when ``models`` does not
        replace it.
    models : list of str, optional
        Model specs (``dlib``, ``onnx:PATH``, ``package.module:factory``, ...).
    device : str, optional
        ``auto``, ``cpu`` or ``cuda``.
    where : str
        Prefix of error messages about the replacements.

    Returns
    -------
    Protocol
        The protocol, unchanged when neither ``models`` nor ``device`` is given.

    Examples
    --------
    >>> p = parse_protocol({"name": "tiny", "n_seeds": 4, "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    >>> with_models(p, ["sface"], device="cpu").models
    ['sface']
    >>> with_models(p, ["sface", "sface"])
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: command line (--model/--device): model 'sface' given twice
    """
    from faceaudit.models.registry import check_model_specs
    from faceaudit.models.runtime import check_device_present

    if not isinstance(protocol, Protocol):
        path = protocol
        protocol = load_protocol(path)
        if not models:
            # The file's own model list is about to be replaced: do not require it to be runnable here.
            _check_models(protocol, str(path))
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
    result = parse_protocol(data, where=where)
    if models:
        check_model_specs(result.models, where)
    if device is not None:
        check_device_present(result.device)
    return result


def without_unavailable(protocol: Protocol, announce: Optional[Callable[[str], Any]] = None) -> Protocol:
    """The protocol minus what cannot run on this machine, each omission announced in one line.

    * models that cannot run here (:func:`faceaudit.models.registry.model_availability`: weights
      missing; a model whose adapter downloads its weights on first use is kept);
    * perceived gender (protected) and the age edit, when the perceived-attribute classifiers
      (npm human-models: faceres, gender, age) were not fetched: the audit becomes skin-only.

    For ``make audit`` (``faceaudit audit --skip-unavailable``) on a machine where the npm registry
    could not be reached.

    Parameters
    ----------
    protocol : Protocol
        The protocol to audit.
    announce : callable, optional
        Called with one line per omission (default: silent).

    Returns
    -------
    Protocol
        The protocol that can run here (the same object when nothing was left out).

    Raises
    ------
    BadInput
        None of the protocol's models can run here.

    Examples
    --------
    >>> p = parse_protocol({"name": "tiny", "n_seeds": 4, "models": ["facenet"],
    ...                     "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    >>> without_unavailable(p, announce=print).models  # facenet downloads its weights when they are missing
    ['facenet']
    """
    from faceaudit.models import human_models
    from faceaudit.models.registry import model_availability

    say = announce or (lambda line: None)
    data = protocol.resolved_dict()
    kept = []
    for spec in protocol.models:
        status = model_availability(spec)
        if not status.runs_in_audit:
            say(f"faceaudit: model {spec!r} left out: {status.reason}")
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
    result = parse_protocol(data, where=protocol.name)
    _check_models(result, protocol.name)
    return result


# ---------------------------------------------------------------------------------------------
# Stages. Each re-runs only what is out of date; see faceaudit.pipeline.


def audit(protocol: Protocol | str | Path, out: str | Path, progress: bool = True, force: bool = False,
          report: bool = True, models: Optional[list] = None, executor: str = "local",
          workers: Optional[int] = None, ray_address: Optional[str] = None,
          policy: str | Path | None = None) -> pipeline.StageContext:
    """Run (or resume) a whole audit into ``out``: generate, embed, pairs, score, manipulation
    check, analyze, gate (with a policy) and (optionally) report.

    Finished stages whose inputs did not change and whose outputs still match the sha256 recorded
    in ``RUN/manifest.json`` are skipped. The models, the device and the policy file are checked
    before anything is written.

    With a gate policy (``policy``, else the protocol's ``analysis.policy``) the gate stage writes
    ``RUN/results/gate.json`` after the analysis, and the card colours its headline against that
    policy only. A failed or inconclusive gate does not make this function raise: the verdict is in
    gate.json (``status``), and ``faceaudit gate`` is the command whose exit code says it. Without
    either, a gate.json an earlier audit wrote is removed.

    Parameters
    ----------
    protocol : Protocol, str or Path
        The protocol or its file (checked like :func:`validate`).
    out : str or Path
        The run directory to create or resume.
    progress : bool
        Show progress bars.
    force : bool
        Redo every stage.
    report : bool
        Render ``RUN/report.html`` at the end.
    models : list, optional
        FaceRecognizer objects to use instead of the protocol's model specs.
    executor : str
        Where the embed stage's shards run: ``local`` or ``ray`` (:mod:`faceaudit.harness.executors`);
        ``workers`` and ``ray_address`` configure it. They change no table and no stage's inputs.
    workers : int, optional
        Worker processes (``local``) or actors (``ray``).
    ray_address : str, optional
        An existing Ray cluster.
    policy : str or Path, optional
        A gate policy YAML (e.g. ``protocols/policies/default.yaml``) instead of the protocol's
        ``analysis.policy``. A relative path is read from the working directory, else from
        faceaudit's source tree. It is not an input of the analysis: changing it redoes only the
        gate and the report.

    Returns
    -------
    pipeline.StageContext
        ``ran`` and ``skipped`` list the stages; ``run`` is the run directory.

    Raises
    ------
    BadInput
        A protocol, model, device or policy problem (one line naming it).

    Examples
    --------
    An unknown model fails in one line before the run directory is created:

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> p = parse_protocol({"name": "tiny", "n_seeds": 4, "models": ["resnet9000"],
    ...                     "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    >>> audit(p, out, progress=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: protocol: models.0: unknown model 'resnet9000' (known: ...)
    >>> out.exists()
    False

    So does a policy file that does not exist:

    >>> p = parse_protocol({"name": "tiny", "n_seeds": 4, "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    >>> audit(p, out, progress=False, policy="no/such/policy.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: --policy: no/such/policy.yaml is not a file (looked in ...)
    >>> out.exists()
    False
    """
    from faceaudit.harness.executors import get_executor

    protocol = _protocol(protocol)
    policy = _policy_file(policy)
    if executor == "local" and workers in (None, 1) and not ray_address:
        return pipeline.audit(protocol, out, progress=progress, force=force, models=models, report=report,
                              policy=policy)
    with get_executor(executor, workers=workers, address=ray_address) as ex:
        return pipeline.audit(protocol, out, progress=progress, force=force, models=models, report=report,
                              executor=ex, policy=policy)


def _policy_file(policy: str | Path | None) -> Optional[Path]:
    """The policy file a caller named, resolved like ``analysis.policy`` and checked before any stage
    runs (a missing file would otherwise surface only after the analysis)."""
    if policy is None:
        return None
    try:
        return pipeline.resolve_policy(policy, "--policy")
    except BadInput as err:  # resolve_policy words it for the protocol's field; this one came from the caller
        raise BadInput(str(err).replace("--policy: analysis.policy: ", "--policy: ", 1)) from None


def generate(protocol: Protocol | str | Path, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Render the protocol's faces into ``out`` (``faces.parquet`` and ``images/``).

    Parameters
    ----------
    protocol : Protocol, str or Path
        The protocol or its file.
    out : str or Path
        The run directory.
    progress : bool
        Show progress bars.

    Returns
    -------
    pandas.DataFrame
        The faces table (one row per image).

    Examples
    --------
    >>> generate("no/such/protocol.yaml", "runs/x")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/protocol.yaml: protocol file not found
    """
    protocol = _protocol(protocol)
    run = pipeline.init_run(protocol, out)
    return pipeline.stage_generate(pipeline.StageContext(run=run, protocol=protocol, progress=progress))


def _ctx(run_root: str | Path, progress: bool = True) -> pipeline.StageContext:
    run, protocol = pipeline.open_run(run_root)
    return pipeline.StageContext(run=run, protocol=protocol, progress=progress)


def embed(run_root: str | Path, progress: bool = True, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    """Embed the run's faces with each model (cached by image hash and model version).

    Parameters
    ----------
    run_root : str or Path
        A run directory whose faces exist.
    progress : bool
        Show progress bars.
    models : list, optional
        FaceRecognizer objects to use instead of the protocol's model specs.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``{model name: embeddings table}``.

    Examples
    --------
    >>> embed("no/such/run")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run: not a run directory (no such directory)
    """
    return pipeline.stage_embed(_ctx(run_root, progress), models)


def embed_with(run_root: str | Path, models: Optional[list[str]] = None, device: Optional[str] = None,
               progress: bool = True) -> dict[str, pd.DataFrame]:
    """:func:`embed` after replacing the run's model list and/or device (recorded in RUN/protocol.yaml).

    The replacements are checked (:func:`with_models`) before ``RUN/protocol.yaml`` is rewritten, so
    a bad model or a device this machine lacks leaves the run as it was.

    Parameters
    ----------
    run_root : str or Path
        A run directory whose faces exist.
    models : list of str, optional
        Model specs replacing the protocol's.
    device : str, optional
        ``auto``, ``cpu`` or ``cuda``.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``{model name: embeddings table}``.

    Examples
    --------
    >>> import tempfile
    >>> p = parse_protocol({"name": "tiny", "n_seeds": 4, "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    >>> run = pipeline.init_run(p, Path(tempfile.mkdtemp()) / "run")
    >>> before = run.protocol.read_bytes()
    >>> embed_with(run.root, models=["resnet9000"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: command line (--model/--device): models.0: unknown model 'resnet9000' ...
    >>> run.protocol.read_bytes() == before
    True
    """
    run, protocol = pipeline.open_run(run_root)
    if models or device is not None:
        protocol = with_models(protocol, models, device)
        pipeline.init_run(protocol, run.root)
    return pipeline.stage_embed(pipeline.StageContext(run=run, protocol=protocol, progress=progress))


def score(run_root: str | Path, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    """Build the genuine and impostor pairs and score them with each model.

    Parameters
    ----------
    run_root : str or Path
        A run directory whose embeddings exist.
    models : list, optional
        FaceRecognizer objects to use instead of the protocol's model specs.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``{model name: scores table}``.

    Examples
    --------
    >>> score("no/such/run")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run: not a run directory (no such directory)
    """
    ctx = _ctx(run_root)
    pipeline.stage_pairs(ctx)
    return pipeline.stage_score(ctx, models)


def analyze(run_root: str | Path) -> dict:
    """Manipulation check (generated faces) and statistics; writes ``RUN/results``.

    Parameters
    ----------
    run_root : str or Path
        A run directory whose scores exist.

    Returns
    -------
    dict
        The result tables by name.

    Examples
    --------
    >>> analyze("no/such/run")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run: not a run directory (no such directory)
    """
    ctx = _ctx(run_root)
    if ctx.protocol.dataset is None:  # the manipulation check is about the generator's edits
        pipeline.stage_manipulation(ctx)
    return pipeline.stage_analyze(ctx)


def report(run_root: str | Path, baseline: str | Path | None = None, baseline_model: Optional[str] = None,
           out: str | Path | None = None) -> Path:
    """Render the model card ``RUN/report.html`` (and ``results/summary.md``).

    Parameters
    ----------
    run_root : str or Path
        A finished run directory.
    baseline : str or Path, optional
        A baseline run of the same protocol: the card adds a comparison with it and is written to
        ``RUN/report_vs_<baseline>.html`` (``report.html`` is left as it is).
    baseline_model : str, optional
        The baseline run's model (default: the same name).
    out : str or Path, optional
        Where to write the card (with ``baseline``: default ``RUN/report_vs_<baseline>.html``;
        without it, the card is written there instead of running the report stage).

    Returns
    -------
    Path
        The report's path.

    Examples
    --------
    >>> report("no/such/run")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run: not a run directory (no such directory)
    """
    if baseline is None and out is None:
        return pipeline.stage_report(_ctx(run_root))
    from faceaudit.report.render import BaselineComparison, render_report

    if baseline is None:
        return render_report(run_root, out)
    # The comparison is statistics: computed here (stats.compare, the baseline as run A) and handed
    # to the renderer as data.
    table = compare(baseline, run_root, model_a=baseline_model)
    return render_report(run_root, out, comparison=BaselineComparison(Path(baseline).resolve().name, table))


def import_dataset(importer: str, source: str | Path, out: str | Path, models: Optional[list[str]] = None,
                   reference: Optional[str] = None, **options: Any) -> pd.DataFrame:
    """``faceaudit import``: read a dataset (:mod:`faceaudit.importers`) into a new run directory.

    The run's protocol.yaml records the dataset (importer, source, design, groups, reference) and
    the models to audit; then :func:`audit_run` (or the stage commands) finish the audit.

    Parameters
    ----------
    importer : str
        ``causalface`` or ``folder``.
    source : str or Path
        The dataset's folder or CSV.
    out : str or Path
        A new run directory.
    models : list of str, optional
        Models to audit (default dlib and SFace).
    reference : str, optional
        The reference group, e.g. ``race=white|gender=male``.
    **options
        The importer's own options (``prototype_value``, ``attribute``, ``attributes``).

    Returns
    -------
    pandas.DataFrame
        The faces table.

    Examples
    --------
    >>> import_dataset("folder", "no/such/folder", "runs/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/folder: ...
    """
    from faceaudit.importers import read_dataset, write_run
    from faceaudit.importers.base import protocol_for
    from faceaudit.rundir import RunDir

    if importer == "scores":
        return import_scores(source, out, reference=reference)
    imported = read_dataset(importer, source, reference=reference, **options)
    protocol = protocol_for(imported, list(models or ["dlib", "sface"]))
    protocol = parse_protocol(protocol.resolved_dict(), where="import")
    _check_models(protocol, "import")
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
    protocol = parse_protocol(protocol.resolved_dict(), where="import")
    run = RunDir(out)
    if run.protocol.exists() and run.protocol.read_text() != protocol.to_yaml():
        raise BadInput(f"{run.root}: already holds another run; import into a new directory")
    return write_scores_run(imported, pipeline.init_run(protocol, out))


def audit_run(run_root: str | Path, progress: bool = True, report: bool = True,
              policy: str | Path | None = None) -> pipeline.StageContext:
    """Every stage after the faces exist (an imported run): embed, pairs, score, analyze, gate, report.

    The gate stage runs as in :func:`audit`: with ``policy`` (or the run's ``analysis.policy``) it
    writes ``RUN/results/gate.json`` after the analysis, whatever the verdict, and the card colours
    against it; without either, a gate.json an earlier audit wrote is removed.

    Parameters
    ----------
    run_root : str or Path
        A run directory whose faces exist (``faceaudit import``).
    progress : bool
        Show progress bars.
    report : bool
        Render ``RUN/report.html`` at the end.
    policy : str or Path, optional
        A gate policy YAML (checked before any stage runs).

    Returns
    -------
    pipeline.StageContext
        The stages that ran and were skipped.

    Examples
    --------
    >>> audit_run("no/such/run")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run: not a run directory (no such directory)
    """
    from faceaudit.models.registry import load_model

    ctx = _ctx(run_root, progress)
    policy = _policy_file(policy)
    if ctx.protocol.dataset is not None and ctx.protocol.dataset.importer == "scores":
        pipeline.stage_analyze(ctx)  # imported scores: no images to embed, scores already exist
        pipeline.stage_gate(ctx, policy)
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
    pipeline.stage_gate(ctx, policy)
    if report:
        pipeline.stage_report(ctx)
    return ctx


# ---------------------------------------------------------------------------------------------
# Two runs, and policies


def compare(run_a: str | Path, run_b: str | Path, model_a: Optional[str] = None, model_b: Optional[str] = None,
            out: str | Path | None = None) -> pd.DataFrame:
    """Run B against run A (the baseline): per-group rates and group contrasts, each change with a
    CI paired by the shared seeds (:func:`faceaudit.stats.compare.compare_runs`).

    Parameters
    ----------
    run_a, run_b : str or Path
        Two finished runs of the same protocol.
    model_a, model_b : str, optional
        The model of each run (default: matched by name).
    out : str or Path, optional
        Also write the table here (``.csv``, else parquet).

    Returns
    -------
    pandas.DataFrame
        One row per (model pair, target FMR, metric, group).

    Examples
    --------
    >>> compare("no/such/a", "no/such/b")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/a: not a run directory (no such directory)
    """
    from faceaudit.stats.compare import compare_runs

    table = compare_runs(run_a, run_b, model_a, model_b)
    if out is not None:
        from faceaudit.rundir import write_table, write_text

        out = Path(out)
        if out.suffix == ".csv":
            write_text(out, table.to_csv(index=False))
        else:
            write_table(out, table)
    return table


def gate(run_root: str | Path, policy: str | Path, junit: str | Path | None = None,
         baseline: str | Path | None = None, baseline_model: Optional[str] = None) -> GateResult:
    """Check a finished run's ``results/summary.json`` against a policy's bounds (:mod:`faceaudit.gate`).

    Never raises for bad input: the result's ``error`` holds the one line and its ``exit_code`` is 2.

    Parameters
    ----------
    run_root : str or Path
        A finished run.
    policy : str or Path
        The policy YAML.
    junit : str or Path, optional
        Write JUnit XML here.
    baseline : str or Path, optional
        A baseline run of the same protocol: the rules are then on the changes against it.
    baseline_model : str, optional
        The baseline run's model (default: the same name).

    Returns
    -------
    faceaudit.gate.GateResult
        ``status`` (pass, fail, inconclusive, bad_input), ``exit_code`` (0, 1, 3, 2) and the checks.

    Examples
    --------
    >>> import json, tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / "results").mkdir()
    >>> fte = {"estimate": 0.01, "ci_lo": 0.0, "ci_hi": 0.02}
    >>> _ = (run / "results" / "summary.json").write_text(json.dumps({"models": {"dlib": {"fte_rate": fte}}}))
    >>> _ = (run / "policy.yaml").write_text("rules:\\n  - {metric: fte_rate, max: 0.05}\\n")
    >>> result = gate(run, run / "policy.yaml")
    >>> result.status, result.exit_code
    ('pass', 0)
    >>> gate(run, run / "nope.yaml").error  # doctest: +ELLIPSIS
    '.../nope.yaml: policy file not found'
    """
    from faceaudit import gate as policy_gate

    if baseline is not None:
        return policy_gate.check_baseline(run_root, baseline, policy, junit_path=junit, baseline_model=baseline_model)
    return policy_gate.check(run_root, policy, junit_path=junit)


def format_gate_result(result: GateResult, as_json: bool = False) -> str:
    """A gate result as text: a table of the checks and a verdict line, or one JSON object.

    Parameters
    ----------
    result : faceaudit.gate.GateResult
        What :func:`gate` returned.
    as_json : bool
        One JSON object (``faceaudit gate --json``) instead of the table.

    Returns
    -------
    str
        The text (no trailing newline).

    Examples
    --------
    >>> import json, tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / "results").mkdir()
    >>> fte = {"estimate": 0.01, "ci_lo": 0.0, "ci_hi": 0.02}
    >>> _ = (run / "results" / "summary.json").write_text(json.dumps({"models": {"dlib": {"fte_rate": fte}}}))
    >>> _ = (run / "policy.yaml").write_text("name: tiny\\nrules:\\n  - {metric: fte_rate, max: 0.05}\\n")
    >>> print(format_gate_result(gate(run, run / "policy.yaml")).splitlines()[-1])
    gate tiny: PASS (exit 0): 1 passed, 0 failed, 0 inconclusive
    >>> json.loads(format_gate_result(gate(run, run / "policy.yaml"), as_json=True))["status"]
    'pass'
    """
    from faceaudit.gate import render_text, result_dict

    return json.dumps(result_dict(result)) if as_json else render_text(result)


# ---------------------------------------------------------------------------------------------
# Models and generators available here


def list_models() -> pd.DataFrame:
    """Every model adapter: whether it runs here (and why not), its version and where its weights are.

    Nothing is loaded or downloaded (:func:`faceaudit.models.registry.list_models`).

    Returns
    -------
    pandas.DataFrame
        ``name, available, reason, description, version, weights, weights_present``.

    Examples
    --------
    >>> table = list_models()
    >>> {"dlib", "sface", "facenet", "package.module:factory"} <= set(table["name"])
    True
    """
    from faceaudit.models.registry import list_models as registry_list

    return registry_list()


def fetch_model_pack(name: str, sha256: Optional[str] = None, url: Optional[str] = None) -> Path:
    """Download an InsightFace pack into ``$FACEAUDIT_MODELS`` and verify its checksum (needs internet).

    Parameters
    ----------
    name : str
        ``buffalo_l``, ``buffalo_m``, ``buffalo_s``, ``buffalo_sc`` or ``antelopev2``.
    sha256 : str, optional
        Expected sha256 of the zip (required where none is known).
    url : str, optional
        A mirror instead of InsightFace's release.

    Returns
    -------
    Path
        The pack's recognition ONNX file.

    Examples
    --------
    >>> fetch_model_pack("buffalo_xl")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: insightface: unknown pack 'buffalo_xl' (known: buffalo_l, buffalo_m, buffalo_s, buffalo_sc, antelopev2)
    """
    from faceaudit.models.packs import fetch_pack

    return fetch_pack(name, sha256=sha256, url=url)


def list_generators() -> pd.DataFrame:
    """The face generators (backends), whether each is ready here, and why not.

    Returns
    -------
    pandas.DataFrame
        ``name, ready, description, detail``.

    Examples
    --------
    >>> list_generators()["name"].tolist()
    ['dcgan', 'diffusion']
    """
    from faceaudit.generate.registry import list_generators as registry_list

    return registry_list()


# ---------------------------------------------------------------------------------------------
# The DCGAN's attribute directions


def fit_directions(out: str | Path, n_samples: int = 4000, seed: int = 0, progress: bool = True) -> Path:
    """Learn conditional attribute directions in the DCGAN latent space and write them to ``out``.

    Samples latents, measures every attribute from pixels and landmarks, fits one linear direction
    per attribute and projects the others out (InterFaceGAN-style conditional directions).

    Parameters
    ----------
    out : str or Path
        Directions file to write (``.json`` or ``.npz``).
    n_samples : int
        Random latents to render and measure (at least 200).
    seed : int
        Seed of the latent sample.
    progress : bool
        Show progress bars.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> fit_directions("directions.npz", n_samples=10)
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: directions fit: n_samples must be at least 200 (got 10)
    """
    from faceaudit.generate.dcgan.fitting import fit_directions as fit

    return fit(n_samples=n_samples, seed=seed, out=Path(out), progress=progress)


def fit_label_directions(labels: str | Path, out: str | Path) -> tuple[Any, Path]:
    """Fit one latent direction per human image label (age, gender, realism, ...) of a DCGAN run.

    Parameters
    ----------
    labels : str or Path
        ``RUN/annotations.parquet`` (``faceaudit annotate export``).
    out : str or Path
        Directions file to write.

    Returns
    -------
    tuple
        The directions (``attributes``: per label, with ``r2_cv`` and ``step``; ``metadata["skipped"]``:
        labels left out and why) and the file written.

    Examples
    --------
    >>> fit_label_directions("no/such/annotations.parquet", "label_directions.npz")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/annotations.parquet: not found; write it with `faceaudit annotate export RUN`
    """
    from faceaudit.generate.dcgan.label_directions import fit_label_directions as fit

    found = fit(labels)
    return found, found.save(out)


def fit_perceived_directions(out: str | Path, base: str | Path | None = None, n_samples: int = 3000,
                             progress: bool = True) -> tuple[Any, Path]:
    """Add perceived-gender and age directions, fitted on the faceres classifier, to a directions file.

    Conditional on skin tone, exposure and the nuisance directions (docs/generator.md). Needs the
    human-models weights (``make setup`` fetches them).

    Parameters
    ----------
    out : str or Path
        Directions file to write.
    base : str or Path, optional
        Directions file to extend (default: the one shipped with faceaudit).
    n_samples : int
        Fitting latents (the base fit's own sample).
    progress : bool
        Show progress bars.

    Returns
    -------
    tuple
        The directions (``gender`` and ``age`` added, each with ``r2_cv``, ``step`` and
        ``leakage``) and the file written.

    Examples
    --------
    >>> fit_perceived_directions("directions.json", base="no/such/directions.json")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/directions.json: directions file not found
    """
    from faceaudit.generate.dcgan.directions import load_directions
    from faceaudit.generate.dcgan.perceived_directions import learn_perceived_directions

    found = learn_perceived_directions(load_directions(base), n_samples=n_samples, progress=progress)
    return found, found.save(out)


# ---------------------------------------------------------------------------------------------
# Human ratings (faceaudit.annotate): collect, export, simulate.


def annotate_serve(run_root: str | Path, host: str = "127.0.0.1", port: int = 8000, raters: Optional[int] = None,
                   raters_per_item: int = 3, pairs_per_cell: int = 2, images_per_cell: int = 1,
                   announce: Callable[[str], Any] = print) -> None:
    """Serve the rating app for RUN (plans ``RUN/annotations.sqlite`` on first use; blocks until Ctrl-C).

    Parameters
    ----------
    run_root : str or Path
        A run directory with faces and pairs.
    host : str
        Interface to listen on.
    port : int
        TCP port (0: any free port).
    raters : int, optional
        Number of raters (first start only; default 3).
    raters_per_item : int
        Raters per pair or image (first start only).
    pairs_per_cell : int
        Genuine and impostor pairs per group x edit cell.
    images_per_cell : int
        Faces per group x edit cell for the image questions.
    announce : callable
        Called with each line to show (the raters' links).

    Returns
    -------
    None

    Examples
    --------
    >>> annotate_serve("no/such/run", port=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run...
    """
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
    """``RUN/annotations.sqlite`` -> ``RUN/annotations.parquet`` and ``RUN/results/human_*.parquet``.

    Parameters
    ----------
    run_root : str or Path
        A run directory whose ratings were collected with :func:`annotate_serve`.

    Returns
    -------
    dict
        ``ratings``, ``raters``, ``flagged_raters``, ``pairs_rated`` and the ``files`` written.

    Examples
    --------
    >>> annotate_export("no/such/run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/run...
    """
    from faceaudit.annotate.export import export_annotations

    return export_annotations(run_root)


def annotate_plan_raters(raters_per_pair: tuple[int, ...] = (3, 5, 8, 12), noise_sd: float = 0.12, bias_sd: float = 0.05,
                         n_pairs: int = 500, seed: int = 0) -> pd.DataFrame:
    """Simulated consensus CI width and coverage for each panel size (:mod:`faceaudit.annotate.simulate`).

    Parameters
    ----------
    raters_per_pair : tuple of int
        Panel sizes to compare (each at least 2).
    noise_sd : float
        Rating noise SD on the [0, 1] similarity scale.
    bias_sd : float
        Rater bias SD on the same scale.
    n_pairs : int
        Simulated pairs (at least 10).
    seed : int
        Seed of the simulation.

    Returns
    -------
    pandas.DataFrame
        One row per panel size: ``raters_per_pair``, ``mean_ci_width``, ``max_ci_width``, ``coverage``.

    Examples
    --------
    >>> table = annotate_plan_raters((3, 8), n_pairs=20)
    >>> table["raters_per_pair"].tolist()
    [3, 8]
    >>> bool(table["mean_ci_width"].iloc[1] < table["mean_ci_width"].iloc[0])
    True
    """
    from faceaudit.annotate.simulate import RaterModel, plan_raters

    if not raters_per_pair or min(raters_per_pair) < 2 or n_pairs < 10 or noise_sd < 0 or bias_sd < 0:
        raise BadInput("annotate plan: need panel sizes >= 2, at least 10 pairs and non-negative noise and bias")
    return plan_raters(n_pairs, tuple(raters_per_pair), RaterModel(noise_sd=noise_sd, bias_sd=bias_sd, seed=seed))
