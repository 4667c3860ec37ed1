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
#: P(male) is clipped to this range before its logit is taken
P_CLIP = (0.01, 0.99)
#: the two gender classifiers (faceaudit.measure.perceived) and their ``predict`` columns
GENDER_CLASSIFIERS = {"faceres": "p_male", "oarriaga": "p_male_independent"}
#: every column :func:`perceived_columns` writes, in order. ``measured_gender_pmale`` and
#: ``measured_gender_logit`` are the *placing* classifier's (``GenderSpec.placed_by``, faceres
#: unless a protocol says otherwise), ``measured_gender_pmale_validation`` the other one's;
#: ``measured_gender_pmale_independent`` is kept for readers of older runs and equals the validation
#: column; ``measured_gender_pmale_faceres`` / ``_oarriaga`` name each classifier outright. A design
#: that places gender also writes :data:`GENDER_PLACEMENT_COLUMNS` (which classifier was which)
PERCEIVED_COLUMNS = ["measured_gender_pmale", "measured_age", "measured_gender_pmale_independent",
                     "measured_age_independent", "measured_gender_logit", "measured_gender_pmale_validation",
                     "measured_gender_pmale_faceres", "measured_gender_pmale_oarriaga"]
GENDER_PLACEMENT_COLUMNS = ["gender_placed_by", "gender_validated_by"]


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


def perceived_columns(pred: pd.DataFrame, placed_by: str = "faceres") -> pd.DataFrame:
    """faces-table columns from :meth:`PerceivedAttributes.predict` output (NaN where no face).

    Parameters
    ----------
    pred : DataFrame
        ``PerceivedAttributes.predict`` output (``p_male``, ``age``, ``p_male_independent``,
        ``age_independent``, ``perceived_ok``).
    placed_by : {"faceres", "oarriaga"}
        The gender classifier that places the cells: its P(male) becomes ``measured_gender_pmale``
        and its logit ``measured_gender_logit``; the other one's is the validation column.

    Returns
    -------
    DataFrame
        The :data:`PERCEIVED_COLUMNS`, one row per image.

    Examples
    --------
    >>> pred = pd.DataFrame({"p_male": [0.9], "age": [30.0], "p_male_independent": [0.2],
    ...                      "age_independent": [28.0], "perceived_ok": [True]})
    >>> out = perceived_columns(pred, placed_by="oarriaga")
    >>> out[["measured_gender_pmale", "measured_gender_pmale_validation", "measured_gender_pmale_faceres"]].values.tolist()
    [[0.2, 0.9, 0.9]]
    """
    from faceaudit.measure.perceived import FACES_COLUMNS

    if placed_by not in GENDER_CLASSIFIERS:
        raise ValueError(f"placed_by: one of {sorted(GENDER_CLASSIFIERS)}, got {placed_by!r}")
    validated_by = next(c for c in GENDER_CLASSIFIERS if c != placed_by)  # there are two
    placing = pred[GENDER_CLASSIFIERS[placed_by]].to_numpy(dtype=np.float64)
    validating = pred[GENDER_CLASSIFIERS[validated_by]].to_numpy(dtype=np.float64)
    out = pd.DataFrame({FACES_COLUMNS[k]: pred[k].to_numpy(dtype=np.float64) for k in FACES_COLUMNS})
    out["measured_gender_pmale"] = placing
    out["measured_gender_pmale_independent"] = validating
    out["measured_gender_logit"] = gender_logit(placing)
    out.loc[~pred["perceived_ok"].to_numpy(dtype=bool), "measured_gender_logit"] = np.nan
    out["measured_gender_pmale_validation"] = validating
    for name, col in GENDER_CLASSIFIERS.items():
        out[f"measured_gender_pmale_{name}"] = pred[col].to_numpy(dtype=np.float64)
    return out[PERCEIVED_COLUMNS]


def remove_stale_images(run: "RunDir", keep: set[str]) -> None:
    """Delete PNGs of an earlier design that this faces table no longer references."""
    if not run.images.exists():
        return
    for f in run.images.glob("*.png"):
        if f"images/{f.name}" not in keep:
            f.unlink()
