"""CausalFace (Liang, Perona & Balakrishnan, ICCV 2023) in its published layout.

    DIR/final_picked_{attr}/seed_{N}/{race}_{gender}_{tag}_{value}.png

Every seed is one synthetic identity rendered in every race x gender group and, per attribute
folder, at several values of that attribute (pose, lighting, age, smiling, ...). The faces table:
``seed`` = N, ``group`` = ``race=<race>|gender=<gender>``, columns ``race`` and ``gender``,
``edit_attr`` = the folder's attribute, ``edit_level`` = the value. The prototype of (seed, group)
(``edit_attr = none``, the anchor of every genuine pair) is its image at ``prototype_value`` (default
0, the unedited render each attribute sweep passes through); when several attribute folders hold
that render, the first folder in name order supplies it and the copies are dropped, so a genuine
pair never compares an image with itself. The design is experimental (paired within seed), so
the analysis is the same as for generated faces.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.importers.base import Imported, check_image, group_name

FOLDER = re.compile(r"^final_picked_(?P<attr>.+)$")
SEED = re.compile(r"^seed_(?P<seed>\d+)$")
FILE = re.compile(r"^(?P<race>[^_]+)_(?P<gender>[^_]+)_(?P<tag>.+)_(?P<value>[-+]?\d+(?:\.\d+)?)\.png$", re.IGNORECASE)
ATTRIBUTES = ["race", "gender"]


def read_causalface(source: str | Path, prototype_value: float = 0.0, reference: str | None = None,
                    verify_images: bool = True) -> Imported:
    root = Path(source)
    if not root.is_dir():
        raise BadInput(f"{root}: not a directory (expected final_picked_<attr>/seed_<N>/<race>_<gender>_<tag>_<value>.png)")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        m = FOLDER.match(folder.name)
        if not m:
            continue
        attr = m["attr"]
        for seed_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            s = SEED.match(seed_dir.name)
            if not s:
                raise BadInput(f"{seed_dir}: expected a folder named seed_<N>")
            for f in sorted(seed_dir.iterdir()):
                if f.suffix.lower() != ".png":
                    continue
                fm = FILE.match(f.name)
                if not fm:
                    raise BadInput(f"{f}: file name is not <race>_<gender>_<tag>_<value>.png")
                rows.append({"seed": int(s["seed"]), "race": fm["race"].lower(), "gender": fm["gender"].lower(),
                             "attr": attr, "tag": fm["tag"], "value": float(fm["value"]), "source_path": str(f)})
    if not rows:
        raise BadInput(f"{root}: no images in the CausalFace layout (final_picked_<attr>/seed_<N>/*.png)")
    df = pd.DataFrame(rows)
    if verify_images:
        for p in df["source_path"]:
            check_image(Path(p))
    df["group"] = [group_name(ATTRIBUTES, v) for v in zip(df["race"], df["gender"])]
    proto = df["value"] == prototype_value
    df["edit_attr"] = df["attr"].where(~proto, "none")
    df["edit_level"] = df["value"].where(~proto, 0.0)
    # one prototype per (seed, group): the first attribute folder's copy
    dup = proto & df.duplicated(["seed", "group", "edit_attr"], keep="first")
    df = df[~dup].copy()
    missing = set(map(tuple, df[["seed", "group"]].drop_duplicates().to_numpy())) - \
        set(map(tuple, df.loc[df["edit_attr"] == "none", ["seed", "group"]].to_numpy()))
    if missing:
        seed, group = sorted(missing)[0]
        raise BadInput(f"{root}: seed_{seed} has no prototype (value {prototype_value:g}) for {group}; "
                       "pass the unedited value with --prototype-value")
    df["face_id"] = [f"cf{seed:05d}_{r}_{g}_" + ("none" if a == "none" else f"{a}{v:+g}")
                     for seed, r, g, a, v in zip(df["seed"], df["race"], df["gender"], df["edit_attr"], df["edit_level"])]
    if df["face_id"].duplicated().any():
        raise BadInput(f"{root}: two images for {df.loc[df['face_id'].duplicated(), 'face_id'].iloc[0]!r}")
    groups = sorted(df["group"].unique())
    ref = reference or groups[0]
    if reference is not None and reference not in groups:
        raise BadInput(f"{root}: reference group {reference!r} is not one of {groups}")
    faces = df[["face_id", "seed", "group", "race", "gender", "edit_attr", "edit_level", "source_path"]]
    return Imported(faces=faces.reset_index(drop=True), importer="causalface", source=str(root),
                    design="experimental", attributes=ATTRIBUTES, reference=ref)
