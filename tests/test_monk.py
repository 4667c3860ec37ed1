"""Monk Skin Tone class (faceaudit.measure.monk): CIEDE2000 against the published test pairs, the
palette mapping to itself, Monk against ITA on generated faces, and the manipulation-check rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import _faces
from faceaudit.measure.monk import MONK_HEX, MONK_LAB, ciede2000, hex_to_rgb, monk_class

#: Sharma, Wu & Dalal (2005), Color Res. Appl. 30(1):21-30, Table 1: (Lab1, Lab2, ΔE00) test pairs
#: 1-7, 9-17 and 19-20 of 34 (they cover the hue-angle wrap-arounds, achromatic colours and the
#: rotation term), as published with 4 decimals
SHARMA_PAIRS = [
    ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
    ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
    ((50, 2.8361, -74.0200), (50, 0, -82.7485), 3.4412),
    ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0000),
    ((50, 0, 0), (50, -1, 2), 2.3669),
    ((50, 2.49, -0.001), (50, -2.49, 0.0009), 7.1792),
    ((50, 2.49, -0.001), (50, -2.49, 0.0011), 7.2195),
    ((50, -0.001, 2.49), (50, 0.0009, -2.49), 4.8045),
    ((50, 2.5, 0), (50, 0, -2.5), 4.3065),
    ((50, 2.5, 0), (73, 25, -18), 27.1492),
    ((50, 2.5, 0), (61, -5, 29), 22.8977),
    ((50, 2.5, 0), (56, -27, -3), 31.9030),
    ((50, 2.5, 0), (58, 24, 15), 19.4535),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_sharma_test_pairs_both_ways():
    lab1 = np.array([p[0] for p in SHARMA_PAIRS], dtype=float)
    lab2 = np.array([p[1] for p in SHARMA_PAIRS], dtype=float)
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    assert np.abs(ciede2000(lab1, lab2) - expected).max() < 5e-5
    assert np.abs(ciede2000(lab2, lab1) - expected).max() < 5e-5  # symmetric, as the formula is
    assert np.all(ciede2000(lab1, lab1) == 0)


def test_palette_round_trip_each_swatch_is_its_own_class():
    assert len(MONK_HEX) == 10
    assert monk_class(MONK_LAB).tolist() == list(range(1, 11))
    # from the sRGB codes through the same conversion the faces go through, and one code off
    from faceaudit.measure.color import srgb_to_lab

    rgb = hex_to_rgb(MONK_HEX)
    assert monk_class(srgb_to_lab(rgb)).tolist() == list(range(1, 11))
    # the palette runs light to dark: L* falls monotonically from MST-1 to MST-10 (apart from the
    # near-white MST-2/MST-3 pair, which differ in hue, not lightness)
    assert MONK_LAB[0, 0] > 90 and MONK_LAB[-1, 0] < 20
    assert np.all(np.diff(MONK_LAB[2:, 0]) < 0)


def test_monk_is_monotone_with_ita_on_generated_faces():
    """200 random DCGAN faces: Monk (1 = lightest) falls as ITA (higher = lighter) rises.
    Measured: Spearman -0.93; every Monk class's median ITA below the lighter class's."""
    from faceaudit.measure import FaceMeasurer

    m = FaceMeasurer().measure(_faces.faces(200))
    ok = m["measured_ok"].to_numpy()
    monk = m.loc[ok, "measured_monk"].to_numpy()
    ita = m.loc[ok, "measured_skin_ita"].to_numpy()
    assert np.isin(monk, np.arange(1, 11)).all()
    rho = spearmanr(ita, monk).statistic
    assert rho < -0.85
    medians = pd.Series(ita).groupby(monk).median()
    populated = medians[pd.Series(monk).value_counts().reindex(medians.index) >= 5]
    assert len(populated) >= 4 and np.all(np.diff(populated.to_numpy()) < 0)
    # no face -> NaN Monk, not a class
    blank = FaceMeasurer().measure(np.stack([_faces.noise_image(1), _faces.blank_image()]))
    assert blank["measured_monk"].isna().all()


def test_manipulation_check_monk_rows_match_pandas():
    """monk_mean / monk_median per skin level and monk_changed per edit level, against a direct
    pandas computation on a faces table with planted Monk classes."""
    from faceaudit.stats.manipulation import MONK_CHANGED, MONK_MEAN, MONK_MEDIAN, manipulation_check

    rng = np.random.default_rng(3)
    rows = []
    for seed in range(30):
        for level, base in (("light", 4), ("dark", 8)):
            proto_monk = base + rng.integers(0, 3)
            rows.append(dict(face_id=f"{seed}{level}n", seed=seed, group=f"skin={level}", skin_tone=level,
                             edit_attr="none", edit_level=0.0, measured_skin_ita=40.0 - 10 * base + rng.normal(),
                             measured_monk=float(proto_monk)))
            for lv in (-1.0, 1.0):
                changed = rng.random() < (0.7 if lv > 0 else 0.2)
                rows.append(dict(face_id=f"{seed}{level}{lv}", seed=seed, group=f"skin={level}", skin_tone=level,
                                 edit_attr="lighting", edit_level=lv, measured_skin_ita=40.0 - 10 * base,
                                 measured_monk=float(proto_monk + (1 if changed else 0))))
    rows[5]["measured_monk"] = np.nan  # a face without landmarks does not count
    faces = pd.DataFrame(rows)
    mc = manipulation_check(faces, reference="light")
    protos = faces[faces["edit_attr"] == "none"]
    for level, label in (("light", "light (reference)"), ("dark", "dark vs light")):
        got = mc[(mc["edit_label"] == label)].set_index("measure")["mean_change"]
        p = protos.loc[protos["skin_tone"] == level, "measured_monk"]
        assert got[MONK_MEAN] == pytest.approx(p.mean())
        assert got[MONK_MEDIAN] == pytest.approx(p.median())
    proto_by = protos.set_index(["seed", "group"])["measured_monk"]
    for lv in (-1.0, 1.0):
        e = faces[(faces["edit_attr"] == "lighting") & (faces["edit_level"] == lv)]
        before = proto_by.loc[list(zip(e["seed"], e["group"]))].to_numpy()
        after = e["measured_monk"].to_numpy()
        known = np.isfinite(before) & np.isfinite(after)
        row = mc[(mc["edit_attr"] == "lighting") & (mc["edit_level"] == lv) & (mc["measure"] == MONK_CHANGED)].iloc[0]
        assert row["mean_change"] == pytest.approx((before[known] != after[known]).mean())
        assert row["n"] == known.sum()
    # the planted difference shows: +1 changes Monk far more often than -1
    changed = mc[mc["measure"] == MONK_CHANGED].set_index("edit_level")["mean_change"]
    assert changed[1.0] > changed[-1.0] + 0.3
