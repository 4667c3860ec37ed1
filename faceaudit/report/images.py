"""Counterfactual image grids, inlined as ``data:`` URIs so the card needs no image files.

One grid per example seed: a row per protected level, a column per edit condition (the prototype
first). Reading along a row shows what the nuisance edits did; reading down a column shows what the
protected edit did with everything else held fixed.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from PIL import Image

from faceaudit.report import fmt

#: thumbnails larger than this are downscaled (a diffusion backend renders 512 px faces)
THUMB_PX = 96


@dataclass
class Grid:
    seed: int
    columns: list[str]  # "prototype", "lighting -2", ...
    rows: list[tuple[str, list[Optional[str]]]]  # (group label, data URIs; None = image missing)


def png_data_uri(path: Path, max_px: int = THUMB_PX) -> Optional[str]:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if max(im.size) > max_px:
                im.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_resolution(root: Path, faces: pd.DataFrame) -> Optional[tuple[int, int]]:
    """(width, height) of the first readable image, i.e. what the models were actually shown."""
    for rel in faces["path"].head(5):
        try:
            with Image.open(root / rel) as im:
                return im.size
        except (OSError, ValueError):
            continue
    return None


def counterfactual_grids(root: Path, faces: pd.DataFrame, group_order: list[str], n_seeds: int = 2) -> list[Grid]:
    """Grids for the first ``n_seeds`` seeds (lowest numbers, so the choice is reproducible)."""
    conds = (
        faces[["edit_attr", "edit_level"]]
        .drop_duplicates()
        .assign(_proto=lambda d: d["edit_attr"] != "none")
        .sort_values(["_proto", "edit_attr", "edit_level"])
    )
    cond_list = list(zip(conds["edit_attr"], conds["edit_level"]))
    columns = ["prototype" if a == "none" else f"{a} {fmt.level(lv)}" for a, lv in cond_list]
    groups = [g for g in group_order if g in set(faces["group"])] or sorted(faces["group"].unique())
    grids = []
    for seed in sorted(faces["seed"].unique())[:n_seeds]:
        sf = faces[faces["seed"] == seed].set_index(["group", "edit_attr", "edit_level"])["path"]
        rows = []
        for g in groups:
            uris = []
            for a, lv in cond_list:
                rel = sf.get((g, a, lv))
                uris.append(png_data_uri(root / rel) if isinstance(rel, str) else None)
            rows.append((fmt.group_label(g), uris))
        grids.append(Grid(seed=int(seed), columns=columns, rows=rows))
    return grids
