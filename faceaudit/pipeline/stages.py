"""The stages over one run directory: generate, embed, pairs, score, manipulation check, analyze,
report. Each one hashes its inputs and is skipped when they and its outputs are unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from faceaudit import __version__
from faceaudit.core.errors import BadInput
from faceaudit.pipeline.context import StageContext, run_stage
from faceaudit.pipeline.models import (
    ModelHandle,
    library_versions,
    record_models,
    set_aside_other_models,
)
from faceaudit.pipeline.runs import require_table, require_verified, verify_images
from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, read_table, sha256_file, sha256_json, write_table


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

    run_stage(ctx, "generate", inputs, ["faces.parquet"], work, verify=lambda: verify_images(ctx.run))
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
    require_table(run.faces, "generate")
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
                              model_factory=model_factory(h) if models is None else None, stats=work_done)
            write_table(ctx.run.embeddings(h.name), emb)
            return {"n_fte": int((emb["status"] != "ok").sum()), "spec": h.spec, **_executor_record(ctx),
                    "work": work_done}

        run_stage(ctx, f"embed:{h.name}", inputs, [rel], work)
        out[h.name] = ctx.run.embeddings(h.name)
    record_models(ctx.run, handles)
    return {name: read_table(path) for name, path in out.items()}


def model_factory(h: ModelHandle) -> Callable[[], Any]:
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

    run_stage(ctx, "pairs", inputs, ["pairs.parquet"], work)
    return read_table(ctx.run.pairs)


def stage_score(ctx: StageContext, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    _refuse_imported_scores(ctx, "score")
    require_table(ctx.run.pairs, "pairs")
    handles = ctx.models(models)
    require_verified(ctx.run, ["pairs"] + [f"embed:{h.name}" for h in handles])
    pairs_hash = sha256_file(ctx.run.pairs)
    out = {}
    for h in handles:
        emb_path = ctx.run.embeddings(h.name)
        require_table(emb_path, "embed")
        inputs = sha256_json({"pairs": pairs_hash, "emb": sha256_file(emb_path), "version": h.version})
        rel = str(ctx.run.scores(h.name).relative_to(ctx.run.root))

        def work(h=h, emb_path=emb_path) -> dict:
            from faceaudit.pairs import score_pairs

            scores = score_pairs(read_table(ctx.run.pairs), read_table(emb_path), h.load())
            write_table(ctx.run.scores(h.name), scores)
            return {"n_fte_pairs": int((scores["status"] != "ok").sum())}

        run_stage(ctx, f"score:{h.name}", inputs, [rel], work)
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

    skin, gender, race = ctx.protocol.skin, ctx.protocol.protected_spec("gender"), ctx.protocol.protected_spec("race")

    def work() -> dict:
        from faceaudit.stats.manipulation import manipulation_check

        table = manipulation_check(read_table(ctx.run.faces), {n: read_table(p) for n, p in emb_paths.items()},
                                   reference=skin.reference if skin else None, levels=skin.levels if skin else None,
                                   gender_levels=gender.levels if gender else None,
                                   gender_reference=gender.reference if gender else None,
                                   prompt_references={p.attribute: p.reference for p in ctx.protocol.protected_specs
                                                      if p.attribute in ("race", "age_group")},
                                   race_classes=race.measured_classes if race else None)
        write_table(ctx.run.manipulation_check, table)
        return {}

    run_stage(ctx, "manipulation", inputs, ["results/manipulation_check.parquet"], work)
    return read_table(ctx.run.manipulation_check)


ANALYZE_OUTPUTS = ["results/error_rates.parquet", "results/contrasts.parquet", "results/dose_response.parquet",
                   "results/gender_age.parquet", "results/impostor_shift.parquet", "results/gender_placement.parquet",
                   "results/fairness.parquet", "results/roc.parquet", "results/score_hist.parquet",
                   "results/fmr_matrix.parquet", "results/summary.json"]


def _operating_point_inputs(ctx: StageContext, names: list[str], inputs: str) -> str:
    """The analysis's inputs hash with the extra operating points checked and included: a fixed
    threshold must name an analysed model, and a calibration run's scores (and pairs) enter the hash,
    so a changed calibration run redoes the analysis. Without ``analysis.thresholds`` the hash is unchanged."""
    from faceaudit.stats.operating_points import calibration_scores_path, check_fixed_thresholds

    a = ctx.protocol.analysis
    check_fixed_thresholds(a.fixed_thresholds, names, str(ctx.run.protocol))
    if not a.calibration_run:
        return inputs
    root = Path(a.calibration_run)
    files = {n: calibration_scores_path(root, n) for n in names}
    files["pairs.parquet"] = root / "pairs.parquet"
    files["protocol.yaml"] = root / "protocol.yaml"
    # a missing file is reported by the analysis itself (one line naming it)
    return sha256_json({"base": inputs, "calibration_run": str(root.resolve()),
                        "calibration": {k: (sha256_file(p) if p.is_file() else None) for k, p in files.items()}})


def stage_analyze(ctx: StageContext) -> dict:
    names = _model_names(ctx)
    for n in names:
        require_table(ctx.run.scores(n), "score")
    require_verified(ctx.run, ["generate", "pairs"] + [f"score:{n}" for n in names] + [f"embed:{n}" for n in names])
    inputs = sha256_json(
        {
            # the gate policy is the gate stage's input, not the analysis's
            "analysis": ctx.protocol.analysis.model_dump(exclude={"policy"}),
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
    inputs = _operating_point_inputs(ctx, names, inputs)
    result: dict = {}

    def work() -> dict:
        from faceaudit.stats.analyze import analyze_run

        result.update(analyze_run(ctx.run.root, models=names))
        return {}

    run_stage(ctx, "analyze", inputs, ANALYZE_OUTPUTS, work)
    return result


def resolve_policy(policy: Optional[str | Path], where: str) -> Optional[Path]:
    """The gate policy file a protocol (``analysis.policy``) or a caller names, or None.

    A relative path is read from the working directory, else from faceaudit's source tree (where
    ``protocols/policies/`` lives); a file in neither is one BadInput line naming ``where``.

    Parameters
    ----------
    policy : str or Path, optional
        The policy path as written.
    where : str
        What named it (the protocol file), for the error message.

    Returns
    -------
    Path or None

    Examples
    --------
    >>> resolve_policy(None, "protocol.yaml") is None
    True
    >>> resolve_policy("protocols/policies/default.yaml", "protocol.yaml").name
    'default.yaml'
    """
    if policy is None or str(policy) == "":
        return None
    path = Path(policy).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, Path(__file__).resolve().parents[2] / path]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise BadInput(f"{where}: analysis.policy: {policy} is not a file (looked in {', '.join(str(c.parent) for c in candidates)})")


def stage_gate(ctx: StageContext, policy: Optional[str | Path] = None) -> Optional[Path]:
    """Check the results against the run's gate policy (``analysis.policy``, or ``policy``) and write
    ``results/gate.json`` (:func:`faceaudit.gate.result_dict` plus the policy's file, description and
    rules), which the card colours its headline by. No policy: nothing is written, and a gate.json an
    earlier audit wrote for a policy since removed is deleted, so the card never colours against a
    policy the run no longer names. A failed or inconclusive gate does not stop the audit (the exit
    code is `faceaudit gate`'s job); a policy the run cannot answer is recorded as the gate's error."""
    gate_json = ctx.run.results / "gate.json"
    path = resolve_policy(policy if policy is not None else ctx.protocol.analysis.policy, str(ctx.run.protocol))
    if path is None:
        if gate_json.exists() and ctx.run.read_manifest().get("stages", {}).get("gate") is not None:
            gate_json.unlink()
            ctx.run.drop_stage("gate")
            if ctx.run.report.exists():
                ctx.run.report.unlink()
        return None
    require_verified(ctx.run, ["analyze"])
    summary = ctx.run.results / "summary.json"
    inputs = sha256_json({"summary": sha256_file(summary), "policy": sha256_file(path), "policy_file": str(path),
                          "version": __version__})

    def work() -> dict:
        from faceaudit.gate import check, load_policy, result_dict
        from faceaudit.rundir import write_json

        result = check(ctx.run.root, path)
        out = result_dict(result)
        try:
            pol = load_policy(path)
            out["policy_description"] = pol.description
            out["rules"] = [{"metric": r.metric, "model": r.model, "group": r.group, "kind": r.kind, "bound": r.bound,
                             "on": r.on, "threshold_source": r.threshold_source, "target_fmr": r.target_fmr,
                             "description": r.description} for r in pol.rules]
        except BadInput as err:  # already the result's error
            out["policy_description"], out["rules"] = "", []
            out["error"] = out.get("error") or str(err)
        out["policy_file"] = str(path)
        write_json(gate_json, out)
        return {"gate_status": result.status}  # ("status" is the stage record's own key)

    run_stage(ctx, "gate", inputs, ["results/gate.json"], work)
    return gate_json


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

    run_stage(ctx, "report", inputs, ["report.html", "results/summary.md"], work)
    return ctx.run.report
