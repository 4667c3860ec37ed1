"""Directions for attributes that pixels cannot measure, learned from human labels.

``faceaudit directions fit --labels RUN/annotations.parquet``: every rated face of a DCGAN run has a
known latent (rebuilt exactly as the generate stage made it: the seed's latent, plus the recorded
chroma and skin shifts, plus the edit's shift), and the raters' single-image labels give a target
per face (mean code for ordinal questions and gender presentation, share of "smiling" for
expression). A ridge regression of the target on the latent (alpha by 5-fold CV, as for the pixel
directions) gives the unit direction; its step is the latent distance that moves the predicted
label by one SD of the labels. Unlike pixel directions the step is not calibrated by rendering
(nothing can measure the label on a new render); ``r2_cv`` says how much of the label the latent
explains. Raters flagged by the attention checks are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.generate.dcgan.directions import AttributeDirection, Directions, load_directions
from faceaudit.generate.dcgan.fitting import _ridge

#: label question -> how a face's target is made from its ratings
TARGETS = {"age": "mean", "gender": "mean", "realism": "mean", "skin": "mean", "expression": "share_smiling"}
MIN_FACES = 30
PREFIX = "human_"


def face_latents(run_root: str | Path, faces: pd.DataFrame) -> np.ndarray:
    """The latent of every row of ``faces`` (a DCGAN run's faces table), as the generate stage built it.

    A face whose gender cell was finished along its own local gradient (``gender_local_shift`` > 0)
    moved along directions the table does not record: its row is NaN."""
    from faceaudit.generate.dcgan.generator import seed_latents
    from faceaudit.generate.dcgan.editing import CHROMA_ATTRIBUTE, EXPOSURE_DIRECTION, SKIN_ATTRIBUTE
    from faceaudit.generate.photometric import PIXEL_EDITS
    from faceaudit.protocol import load_protocol

    protocol = load_protocol(Path(run_root) / "protocol.yaml")
    missing = [c for c in ("seed", "chroma_shift", "skin_shift", "edit_attr", "edit_level") if c not in faces.columns]
    if missing:
        raise BadInput(f"{Path(run_root) / 'faces.parquet'}: missing {missing}; label directions need a DCGAN run's faces table")
    directions = load_directions(protocol.generator.directions)
    z = seed_latents(faces["seed"].astype(int).tolist(), protocol.seed, protocol.generator.truncation)
    z = z + faces["chroma_shift"].to_numpy(dtype=float)[:, None] * directions[CHROMA_ATTRIBUTE].unit
    z = z + faces["skin_shift"].to_numpy(dtype=float)[:, None] * directions[SKIN_ATTRIBUTE].unit
    if "exposure_shift" in faces.columns and EXPOSURE_DIRECTION in directions.attributes:
        # the skin search's exposure hold moved the prototype along the border-luma direction too
        z = z + np.nan_to_num(faces["exposure_shift"].to_numpy(dtype=float))[:, None] * directions[EXPOSURE_DIRECTION].unit
    if "gender_shift" in faces.columns:
        # a protected gender level: the seed's move along the gender direction, before the skin search
        z = z + faces["gender_shift"].to_numpy(dtype=float)[:, None] * directions["gender"].unit
    if "gender_local_shift" in faces.columns:
        z[faces["gender_local_shift"].to_numpy(dtype=float) > 0] = np.nan
    for i, (attr, level) in enumerate(zip(faces["edit_attr"], faces["edit_level"])):
        # pixel edits (exposure) leave the latent as it is
        if attr != "none" and attr not in PIXEL_EDITS:
            z[i] = z[i] + directions.shift(attr, float(level))
    return z


def label_targets(annotations: pd.DataFrame, flagged: set[str] = frozenset()) -> pd.DataFrame:
    """One row per rated face, one column per label question (NaN where a face has no rating)."""
    a = annotations[(annotations["kind"] == "image") & annotations["question"].isin(list(TARGETS))
                    & ~annotations["rater"].isin(flagged) & annotations["value"].notna()]
    cols = {}
    for q, how in TARGETS.items():
        d = a[a["question"] == q]
        if d.empty:
            continue
        v = d["value"].astype(float)
        cols[q] = (v == 2).groupby(d["item"]).mean() if how == "share_smiling" else v.groupby(d["item"]).mean()
    return pd.DataFrame(cols)


def fit_direction(name: str, z: np.ndarray, y: np.ndarray) -> AttributeDirection:
    """Ridge direction of ``y`` on latents ``z`` (rows aligned)."""
    sd = float(np.std(y))
    if sd == 0:
        raise BadInput(f"labels {name!r}: every face got the same label; nothing to fit")
    coef, alpha, r2_train, r2_cv = _ridge(z, (y - y.mean()) / sd)
    norm = float(np.linalg.norm(coef))
    if norm == 0:
        raise BadInput(f"labels {name!r}: the fit found no direction")
    unit = coef / norm
    step = 1.0 / norm  # latent distance for one SD of the label (the regression's slope along unit)
    return AttributeDirection(attribute=f"{PREFIX}{name}", measure=f"human:{name}", unit=unit, unconditional=unit.copy(),
                              step=step, predicted_step=step, mean=float(y.mean()), sd=sd, r2_train=r2_train,
                              r2_cv=r2_cv, ridge_alpha=alpha, calibration_n=0)


def fit_label_directions(annotations_path: str | Path) -> Directions:
    path = Path(annotations_path)
    if not path.is_file():
        raise BadInput(f"{path}: not found; write it with `faceaudit annotate export RUN`")
    run_root = path.parent
    try:
        ann = pd.read_parquet(path)
        faces = pd.read_parquet(run_root / "faces.parquet")
    except Exception as err:
        raise BadInput(f"{path}: cannot read the annotations or the run's faces.parquet ({type(err).__name__}: {err})") from None
    missing = [c for c in ("rater", "kind", "item", "question", "value") if c not in ann.columns]
    if missing:
        raise BadInput(f"{path}: missing columns {missing}")
    quality = run_root / "results" / "rater_quality.parquet"
    flagged = set(pd.read_parquet(quality).query("flagged")["rater"]) if quality.exists() else set()
    targets = label_targets(ann, flagged)
    targets = targets[targets.index.isin(faces["face_id"])]
    if targets.empty:
        raise BadInput(f"{path}: no single-image labels of this run's faces")
    rated = faces.set_index("face_id").loc[targets.index].reset_index()
    z = face_latents(run_root, rated)
    known = np.isfinite(z).all(axis=1)
    fitted, skipped = {}, {}
    for q in targets.columns:
        ok = targets[q].notna().to_numpy() & known
        if ok.sum() < MIN_FACES:
            skipped[q] = f"{int(ok.sum())} labelled faces (< {MIN_FACES})"
            continue
        d = fit_direction(q, z[ok], targets[q].to_numpy()[ok])
        fitted[d.attribute] = d
    if not fitted:
        raise BadInput(f"{path}: too few labelled faces to fit any direction ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    return Directions(fitted, metadata={"source": "human labels", "annotations": str(path), "n_faces": int(len(targets)),
                                        "n_ratings": int(len(ann)), "flagged_raters": sorted(flagged), "skipped": skipped,
                                        "faces_without_latent": int((~known).sum()),
                                        "calibrated": False})
