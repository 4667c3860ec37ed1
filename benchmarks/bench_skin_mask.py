"""The face-mesh skin mask against the 68-landmark patches: cost and within-seed ITA spread.

    PYTHONPATH=. python benchmarks/bench_skin_mask.py RUN_DIR [RUN_DIR ...]

RUN_DIR is a generated run (``faceaudit generate``; docs/measures.md used a copy of
protocols/default.yaml with ``n_seeds: 50``). Every face image of the run is measured twice, with
``FaceMeasurer(skin_mask="landmarks")`` (the sampler before MEASURE_VERSION 3) and with the mesh
mask, so the two measures are compared on identical pixels. Printed:

* cost: ms per face of the landmarker and of the mesh stage, best of 3 on up to 1000 of the faces;
* spread: for each nuisance edit, the SD of ITA over the faces of one seed and skin level (its
  prototype and the edit's levels), pooled over (seed, level) cells as the root mean variance; and
  the same divided by the SD of the prototypes' ITA over all seeds and levels (scale-free: the two
  masks read ITA on slightly different scales);
* placement: seeds kept and prototypes per level, from the run's own faces table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from faceaudit.measure import FaceMeasurer


def load_images(run: Path, paths: list[str]) -> np.ndarray:
    return np.stack([cv2.cvtColor(cv2.imread(str(run / p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths])


def measure_all(measurer: FaceMeasurer, images: np.ndarray, batch: int = 256) -> pd.DataFrame:
    return pd.concat([measurer.measure(images[s : s + batch]) for s in range(0, len(images), batch)], ignore_index=True)


def mesh_cost(measurer: FaceMeasurer, images: np.ndarray, repeats: int = 3) -> tuple[float, float]:
    """Best-of-``repeats`` seconds per face of the landmarker (YuNet + dlib) and of the mesh stage
    alone (crop + graph), on the same faces: the machine is shared, the minimum is the cost."""
    marks = measurer.landmarks(images)
    t_marks, t_mesh = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        measurer.landmarks(images)
        t1 = time.perf_counter()
        measurer.mesh.mesh(images, marks.boxes)
        t2 = time.perf_counter()
        t_marks.append(t1 - t0)
        t_mesh.append(t2 - t1)
    return min(t_marks) / len(images), min(t_mesh) / len(images)


def spread_table(faces: pd.DataFrame, ita: pd.Series) -> pd.DataFrame:
    """Pooled within-(seed, skin level) SD of ``ita`` per edit attribute (prototype included)."""
    f = faces.assign(ita=ita.to_numpy())
    protos = f[f.edit_attr == "none"]
    between = protos["ita"].std()
    rows = []
    for attr in sorted(a for a in f.edit_attr.unique() if a != "none"):
        cell = pd.concat([protos, f[f.edit_attr == attr]])
        var = cell.groupby(["seed", "skin_tone"])["ita"].var(ddof=1).dropna()
        sd = float(np.sqrt(var.mean()))
        rows.append({"edit": attr, "cells": len(var), "within_sd": sd, "within_over_between": sd / between})
    return pd.DataFrame(rows)


def main(runs: list[str]) -> None:
    old_m, new_m = FaceMeasurer(skin_mask="landmarks"), FaceMeasurer()
    assert new_m.mesh is not None, new_m.mesh_unavailable
    for run_dir in runs:
        run = Path(run_dir)
        faces = pd.read_parquet(run / "faces.parquet")
        images = load_images(run, faces["path"].tolist())
        old, new = measure_all(old_m, images), measure_all(new_m, images)
        n = len(images)
        t_marks, t_mesh = mesh_cost(new_m, images[: min(n, 1000)])
        print(f"\n== {run} ({n} faces, {faces.seed.nunique()} seeds kept)")
        print(f"cost per face: landmarks (YuNet + dlib) {1e3 * t_marks:.2f} ms, mesh (crop + graph) {1e3 * t_mesh:.2f} ms "
              f"= {t_mesh * 1000:.1f} s per 1000 faces")
        print("mask used:", new["measured_skin_mask"].value_counts().to_dict())
        both = old["measured_ok"] & new["measured_ok"]
        d = (new["measured_skin_ita"] - old["measured_skin_ita"])[both]
        print(f"ITA mesh - landmarks on the same faces: mean {d.mean():+.1f}, SD {d.std():.1f}, "
              f"corr {np.corrcoef(new['measured_skin_ita'][both], old['measured_skin_ita'][both])[0, 1]:.3f}")
        table = spread_table(faces, old["measured_skin_ita"]).merge(
            spread_table(faces, new["measured_skin_ita"]), on=["edit", "cells"], suffixes=("_landmarks", "_mesh"))
        print(table.round(3).to_string(index=False))
        print("prototypes per level:", faces[faces.edit_attr == "none"].skin_tone.value_counts().to_dict())


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
