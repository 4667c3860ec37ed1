"""``faceaudit import causalface|folder|scores``: a dataset in as a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from faceaudit.cli.app import PolicyOpt, ProgressOpt, gate_line, gate_verdict, handles_errors, import_app, out_console
from faceaudit.core.errors import BadInput


ImportOut = typer.Option(..., "--out", "-o", help="Run directory to create.")
ImportModels = typer.Option(None, "--model", "-m", help="Model to audit (repeatable; default dlib and sface).")
ImportRef = typer.Option(None, "--reference", help="Reference group, e.g. 'race=white|gender=male'.")
ImportAudit = typer.Option(False, "--audit/--no-audit", help="Also run embed, score, analyze, gate (with --policy) and report.")


def _check_policy_needs_audit(policy: Optional[Path], audit: bool) -> None:
    # before the import writes anything: a --policy that would be ignored is a usage error
    if policy is not None and not audit:
        raise BadInput(f"--policy {policy}: the gate runs only with --audit (or run `faceaudit gate RUN --policy FILE` later)")


def _audit_imported(out: Path, progress: bool, policy: Optional[Path]) -> None:
    from faceaudit import api

    ctx = api.audit_run(out, progress=progress, policy=policy)
    gate = gate_verdict(ctx.run.results / "gate.json")
    if gate is not None:
        out_console.print(gate_line(gate), soft_wrap=True, markup=False)
    out_console.print(f"report: {ctx.run.report}")


def _after_import(out: Path, faces, audit: bool, progress: bool, policy: Optional[Path] = None) -> None:
    out_console.print(f"imported {len(faces)} faces of {faces['seed'].nunique()} identities in "
                      f"{faces['group'].nunique()} groups -> {out}")
    if audit:
        _audit_imported(out, progress, policy)
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
    policy: Optional[Path] = PolicyOpt,
    progress: bool = ProgressOpt,
) -> None:
    """CausalFace layout -> faces table (seeds, race x gender groups, edit levels); experimental design."""
    from faceaudit import api

    _check_policy_needs_audit(policy, audit)
    faces = api.import_dataset("causalface", source, out, models=model, reference=reference,
                               prototype_value=prototype_value)
    _after_import(out, faces, audit, progress, policy)


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
    policy: Optional[Path] = PolicyOpt,
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
    _check_policy_needs_audit(policy, audit)
    faces = api.import_dataset("folder", source, out, models=model, reference=reference, **opts)
    _after_import(out, faces, audit, progress, policy)


@import_app.command("scores")
@handles_errors
def import_scores(
    source: Path = typer.Argument(..., help="CSV or parquet, one row per comparison: identity_a, identity_b, kind "
                                            "(genuine|impostor), group, score (higher = more similar); optional "
                                            "edit_attr, edit_level, model."),
    out: Path = ImportOut,
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference group (default: the first in sorted order)."),
    audit: bool = typer.Option(False, "--audit/--no-audit", help="Also run analyze, gate (with --policy) and report."),
    policy: Optional[Path] = PolicyOpt,
    progress: bool = ProgressOpt,
) -> None:
    """Your own comparison scores -> observational run (identity is the cluster; no images, nothing to embed)."""
    from faceaudit import api

    _check_policy_needs_audit(policy, audit)
    faces = api.import_scores(source, out, reference=reference)
    out_console.print(f"imported the scores of {faces['seed'].nunique()} identities in {faces['group'].nunique()} "
                      f"groups -> {out}")
    if audit:
        _audit_imported(out, progress, policy)
    else:
        out_console.print(f"next: faceaudit analyze {out} && faceaudit report {out}   (or import with --audit)")
