"""The faces table as every generator backend writes it: face ids, PNG bytes, shared columns.

Backends differ in how they reach an image; what they write is the same: one row per image with
the columns of docs/ARCHITECTURE.md, the image as a PNG whose bytes depend only on its pixels
(:func:`encode_png`), and, where the design places or edits perceived gender or age, the
classifiers' columns (:func:`perceived_columns`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from faceaudit.protocol import Protocol
    from faceaudit.rundir import RunDir

#: the columns every generated faces table starts with (a gender column follows skin_tone when
#: gender is protected; a prompted design puts its own protected columns there)
FACE_COLUMNS = ["face_id", "seed", "group", "skin_tone", "edit_attr", "edit_level", "path", "sha256", "source"]
#: faceres P(male) is clipped to this range before its logit is taken
P_CLIP = (0.01, 0.99)
#: every column :func:`perceived_columns` writes, in order
PERCEIVED_COLUMNS = ["measured_gender_pmale", "measured_age", "measured_gender_pmale_independent",
                     "measured_age_independent", "measured_gender_logit"]


def format_level(level: float) -> str:
    """An edit level as it appears in a face id: one decimal unless more are needed.

    Examples
    --------
    >>> [format_level(x) for x in (1.0, -2.0, 0.5, 1.25)]
    ['+1.0', '-2.0', '+0.5', '+1.25']
    """
    return f"{level:+.1f}" if round(level, 1) == level else f"{level:+g}"


def face_id(seed: int, cell: str, edit_attr: str = "none", edit_level: float = 0.0) -> str:
    """The stable id of one image: seed, protected cell name, edit.

    Parameters
    ----------
    seed : int
        The face seed.
    cell : str
        The protected cell's name (``dark``, or ``dark_female`` for a crossed design).
    edit_attr, edit_level
        The nuisance edit (``none`` for the prototype).

    Returns
    -------
    str

    Examples
    --------
    >>> face_id(3, "dark"), face_id(3, "dark", "yaw", -1.0)
    ('s00003_dark_none_0', 's00003_dark_yaw_-1.0')
    """
    if edit_attr == "none":
        return f"s{seed:05d}_{cell}_none_0"
    return f"s{seed:05d}_{cell}_{edit_attr}_{format_level(edit_level)}"


def encode_png(image_rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB image with fixed settings (same pixels -> same bytes).

    Examples
    --------
    >>> encode_png(np.zeros((2, 2, 3), np.uint8))[:4]
    b'\\x89PNG'
    """
    import cv2

    # zlib level and filter are part of the output: fixed so the sha256 column is reproducible
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def needs_perceived(protocol: "Protocol") -> bool:
    """Whether perceived gender and age are measured on every face: when the design places or edits
    them (and for a prompted race or age group, whose only checks are those measures)."""
    return (any(p.attribute in ("gender", "race", "age_group") for p in protocol.protected_specs)
            or any(e.attribute == "age" for e in protocol.edits))


def gender_logit(p_male: np.ndarray | pd.Series) -> np.ndarray:
    """Logit of P(male), clipped to :data:`P_CLIP` first.

    Examples
    --------
    >>> [round(float(x), 2) for x in gender_logit(np.array([0.5, 1.0]))]
    [0.0, 4.6]
    """
    p = np.clip(np.asarray(p_male, dtype=np.float64), *P_CLIP)
    return np.log(p / (1.0 - p))


def perceived_columns(pred: pd.DataFrame) -> pd.DataFrame:
    """faces-table columns from :meth:`PerceivedAttributes.predict` output (NaN where no face)."""
    from faceaudit.measure.perceived import FACES_COLUMNS

    out = pd.DataFrame({FACES_COLUMNS[k]: pred[k].to_numpy(dtype=np.float64) for k in FACES_COLUMNS})
    out["measured_gender_logit"] = gender_logit(pred["p_male"])
    out.loc[~pred["perceived_ok"].to_numpy(dtype=bool), "measured_gender_logit"] = np.nan
    return out


def remove_stale_images(run: "RunDir", keep: set[str]) -> None:
    """Delete PNGs of an earlier design that this faces table no longer references."""
    if not run.images.exists():
        return
    for f in run.images.glob("*.png"):
        if f"images/{f.name}" not in keep:
            f.unlink()
