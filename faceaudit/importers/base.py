"""What every importer produces, and how it becomes a run directory."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from faceaudit.core.errors import BadInput
from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, sha256_file, write_table

#: faces columns an importer fills (besides one column per protected attribute)
IMPORT_COLUMNS = ["face_id", "seed", "group", "edit_attr", "edit_level", "source_path"]


@dataclass
class Imported:
    """A dataset read into the faces-table shape, before any file is written."""

    faces: pd.DataFrame  # IMPORT_COLUMNS + attribute columns (+ importer-specific ones)
    importer: str
    source: str
    design: str  # experimental | observational
    attributes: list[str]
    reference: str  # reference group name

    @property
    def groups(self) -> list[str]:
        return sorted(self.faces["group"].unique())


def group_name(attributes: list[str], values) -> str:
    """``race=black|gender=female`` (DESIGN.md: ``attr=level`` joined by ``|`` in attribute order)."""
    return "|".join(f"{a}={v}" for a, v in zip(attributes, values))


def check_image(path: Path) -> None:
    try:
        with Image.open(path) as im:
            im.verify()
    except (OSError, UnidentifiedImageError) as err:
        raise BadInput(f"{path}: cannot read image ({type(err).__name__})") from None


def protocol_for(imported: Imported, models: list[str], name: str | None = None, seed: int = 0,
                 analysis: dict | None = None) -> Protocol:
    groups = imported.groups
    if len(groups) < 2:
        raise BadInput(f"{imported.source}: found {len(groups)} group(s) {groups}; need at least 2 to compare")
    if imported.reference not in groups:
        raise BadInput(f"{imported.source}: reference group {imported.reference!r} is not one of {groups}")
    return Protocol.model_validate({
        "name": name or f"{imported.importer}-import",
        "description": f"Imported with `faceaudit import {imported.importer}` from {imported.source} "
                       f"({imported.design} design).",
        "seed": seed,
        "n_seeds": max(2, int(imported.faces["seed"].nunique())),
        "edits": [],
        "models": models,
        "analysis": analysis or {},
        "dataset": {"importer": imported.importer, "source": imported.source, "design": imported.design,
                    "attributes": imported.attributes, "groups": groups, "reference": imported.reference},
    })


def write_run(imported: Imported, run: RunDir) -> pd.DataFrame:
    """Copy the images into ``RUN/images`` and write faces.parquet (last, atomically: an interrupted
    import never leaves a run that looks complete; re-running it overwrites). ``RUN/protocol.yaml``
    and the manifest are the caller's (api.import_dataset)."""
    run.images.mkdir(parents=True, exist_ok=True)
    faces = imported.faces.copy()
    rel, sha = [], []
    for fid, src in zip(faces["face_id"], faces["source_path"]):
        src = Path(src)
        dst = run.images / f"{fid}{src.suffix.lower()}"
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
        rel.append(str(dst.relative_to(run.root)))
        sha.append(sha256_file(dst))
    faces["path"] = rel
    faces["sha256"] = sha
    faces["source"] = f"import:{imported.importer}"
    faces["seed"] = faces["seed"].astype(np.int64)
    faces["edit_level"] = faces["edit_level"].astype(float)
    faces = faces.drop(columns=["source_path"]).sort_values(["seed", "group", "edit_attr", "edit_level", "face_id"])
    faces = faces.reset_index(drop=True)
    run.update_manifest(dataset={"importer": imported.importer, "source": imported.source, "design": imported.design,
                                 "n_faces": int(len(faces)), "n_identities": int(faces["seed"].nunique())})
    write_table(run.faces, faces)
    return faces
