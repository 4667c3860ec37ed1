"""Real photographs with identity and attribute labels (RFW/BFW-style folders, or a CSV).

- CSV: columns ``path`` (absolute, or relative to the CSV's folder), ``identity``, and one column per
  protected attribute (``attributes``; default: every other column).
- Folder: ``DIR/<level>/<identity>/<image>`` (RFW's ``race/identity/img`` layout): one protected
  attribute (named by ``attribute``, default ``group``) whose level is the first folder.

Observational design. Identity is the cluster (``seed`` = the identity's index in name order; the
name is kept in ``identity``), so intervals resample identities. Genuine pairs: the identity's first
image (path order; ``edit_attr = none``) against each of its other images (``edit_attr = photo``,
``edit_level = 1``). Impostor pairs: different identities of the same group, references against
references and photos against photos (one photo per identity), i.e. impostors matched by group.
An identity appears in one group only, so group contrasts compare different people: they are
correlational, not causal, and the model card says so in its first lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.importers.base import Imported, check_image, group_name

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _from_csv(path: Path, attributes: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # malformed CSV
        raise BadInput(f"{path}: cannot read CSV ({type(err).__name__}: {err})") from None
    missing = [c for c in ("path", "identity") if c not in df.columns]
    if missing:
        raise BadInput(f"{path}: missing columns {missing} (need path, identity and attribute columns)")
    attrs = attributes or [c for c in df.columns if c not in ("path", "identity")]
    if not attrs:
        raise BadInput(f"{path}: no attribute columns besides path and identity")
    absent = [a for a in attrs if a not in df.columns]
    if absent:
        raise BadInput(f"{path}: missing attribute columns {absent}")
    for i, row in enumerate(df.itertuples(index=False), start=2):
        for col in ["path", "identity", *attrs]:
            if getattr(row, col) == "":
                raise BadInput(f"{path}: line {i}: empty {col}")
    df["source_path"] = [str(p if Path(p).is_absolute() else (path.parent / p)) for p in df["path"]]
    return df[["identity", "source_path", *attrs]], attrs


def _from_dir(root: Path, attribute: str) -> tuple[pd.DataFrame, list[str]]:
    rows = []
    for level in sorted(p for p in root.iterdir() if p.is_dir()):
        for ident in sorted(p for p in level.iterdir() if p.is_dir()):
            for f in sorted(ident.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    rows.append({"identity": ident.name, "source_path": str(f), attribute: level.name})
    if not rows:
        raise BadInput(f"{root}: no images in the layout DIR/<level>/<identity>/<image>")
    return pd.DataFrame(rows), [attribute]


def read_folder(source: str | Path, attributes: list[str] | None = None, attribute: str = "group",
                reference: str | None = None, verify_images: bool = True) -> Imported:
    src = Path(source)
    if src.is_file():
        df, attrs = _from_csv(src, attributes)
    elif src.is_dir():
        df, attrs = _from_dir(src, attribute)
    else:
        raise BadInput(f"{src}: not found (a CSV with path, identity, attribute columns, or a folder)")
    for p in df["source_path"]:
        if not Path(p).is_file():
            raise BadInput(f"{src}: image {p} not found")
        if verify_images:
            check_image(Path(p))
    df["group"] = [group_name(attrs, v) for v in zip(*(df[a] for a in attrs))]
    per_ident = df.groupby("identity")["group"].nunique()
    if (per_ident > 1).any():
        who = per_ident[per_ident > 1].index[0]
        raise BadInput(f"{src}: identity {who!r} has images in more than one group")
    idents = sorted(df["identity"].unique())
    df["seed"] = df["identity"].map({name: i for i, name in enumerate(idents)})
    df = df.sort_values(["seed", "source_path"]).reset_index(drop=True)
    first = ~df.duplicated("seed", keep="first")
    df["edit_attr"] = ["none" if f else "photo" for f in first]
    df["edit_level"] = [0.0 if f else 1.0 for f in first]
    df["image_index"] = df.groupby("seed").cumcount()
    safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", str(i)) for i in df["identity"]]
    df["face_id"] = [f"id{s:06d}_{n}_{k:04d}" for s, n, k in zip(df["seed"], safe, df["image_index"])]
    groups = sorted(df["group"].unique())
    if reference is not None and reference not in groups:
        raise BadInput(f"{src}: reference group {reference!r} is not one of {groups}")
    # default reference: the group with the most identities (the most precise baseline)
    ref = reference or df.groupby("group")["seed"].nunique().sort_index().idxmax()
    faces = df[["face_id", "seed", "identity", "group", *attrs, "edit_attr", "edit_level", "image_index", "source_path"]]
    return Imported(faces=faces, importer="folder", source=str(src), design="observational", attributes=attrs,
                    reference=ref)
