"""Exposure of the non-face pixels: the measures, the photometric exposure edit, and a skin search
that changes skin without changing exposure (real DCGAN faces, real landmarks)."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.generate.dcgan.generator import DCGANGenerator
from faceaudit.generate.dcgan.directions import load_directions
from faceaudit.generate.dcgan.editing import search_skin_levels
from faceaudit.stats.manipulation import IN_BIN, manipulation_check
from faceaudit.generate.photometric import EV_PER_SD, apply_exposure, apply_exposure_ev
from faceaudit.measure import FaceMeasurer
from faceaudit.measure.exposure import border_mask, exposure_measures, face_region, hair_band, luma
from faceaudit.protocol import ProtectedSpec


@pytest.fixture(scope="module")
def faces():
    # protocol seed 101: faces neither the directions nor the exposure calibration were fitted on
    gen = DCGANGenerator(protocol_seed=101, device="cpu")
    measurer = FaceMeasurer()
    images = gen.render_latents(gen.latents(range(24)))
    marks = measurer.landmarks(images)
    return gen, measurer, images, marks


def test_skin_direction_is_conditioned_on_exposure():
    from faceaudit.generate.dcgan.directions import EXPOSURE_ATTRIBUTES

    d = load_directions()
    skin = d["skin_ita"]
    for b in EXPOSURE_ATTRIBUTES:
        assert b in skin.conditioned_on and abs(skin.unit @ d[b].unconditional) < 1e-9
        # measured on the fit's calibration renders: a +1 SD skin step moves no exposure measure by 0.1 SD
        assert abs(skin.leakage[b]) < 0.1, (b, skin.leakage[b])
    assert d.metadata["conditioning"]["skin_ita"] == list(skin.conditioned_on)
    # the border-luma direction the search corrects along leaves skin ITA alone on average
    assert abs(d["border_luma"].leakage["skin_ita"]) < 0.1


def test_luma_and_border_against_hand_computation():
    img = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    img[0, :, :] = (200, 100, 50)
    img[0, 6:58, 6:58] = (10, 10, 10)  # the inside of the 6 px ring: must not count
    expected = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    got = exposure_measures(img, np.full((1, 68, 2), np.nan))
    assert got["border_luma"][0] == pytest.approx(expected)
    assert border_mask((64, 64)).sum() == 64 * 64 - 52 * 52
    # no landmarks: the landmark-based measures are NaN, never a guess
    assert np.isnan(got["background_luma"][0]) and np.isnan(got["hair_luma"][0]) and np.isnan(got["white_balance"][0])


def test_face_pixels_do_not_move_background_measures(faces):
    _, _, images, marks = faces
    ok = np.flatnonzero(marks.found)[:12]
    assert len(ok) >= 10
    base = exposure_measures(images[ok], marks.points[ok])
    darker = images[ok].copy()
    for k, i in enumerate(ok):
        inside = face_region(marks.points[i].astype(np.float64), (64, 64))
        darker[k][inside] = (darker[k][inside] * 0.4).astype(np.uint8)
        # the hair band lies above the face region and the region is a real part of the image
        band = hair_band(marks.points[i].astype(np.float64), (64, 64))
        assert 0.2 < inside.mean() < 0.9 and (band & inside).mean() < 0.02
    after = exposure_measures(darker, marks.points[ok])
    np.testing.assert_array_equal(after["background_luma"], base["background_luma"])
    np.testing.assert_array_equal(after["white_balance"], base["white_balance"])
    # brightening only the non-face pixels moves background luma by the planted amount
    brighter = images[ok].astype(np.int16)
    for k, i in enumerate(ok):
        outside = ~face_region(marks.points[i].astype(np.float64), (64, 64))
        brighter[k][outside] += 20
    clipped = (brighter > 255).any(axis=(1, 2, 3))
    after = exposure_measures(np.clip(brighter, 0, 255).astype(np.uint8), marks.points[ok])
    np.testing.assert_allclose((after["background_luma"] - base["background_luma"])[~clipped], 20.0, atol=1e-9)


def test_exposure_edit_is_a_camera_gain(faces):
    _, measurer, images, marks = faces
    codes = np.arange(256, dtype=np.uint8).reshape(1, 1, 256, 1).repeat(3, axis=3)
    np.testing.assert_array_equal(apply_exposure(codes, 0.0), codes)  # level 0 is the image itself
    # one stop darker halves linear light: sRGB 255 -> 0.5 linear -> code 188 (IEC 61966-2-1)
    assert apply_exposure_ev(np.full((1, 1, 3), 255, np.uint8), -1.0)[0, 0, 0] == 188
    ok = marks.found
    wb0 = exposure_measures(images, marks.points)["white_balance"]
    wb1 = exposure_measures(apply_exposure(images, -1.0), marks.points)["white_balance"]
    # a gain in linear light keeps the colour balance (only quantisation moves it)
    assert np.nanmax(np.abs(wb1 - wb0)[ok]) < 0.05
    # levels in SD of border luma: monotone, and +-1 level moves it by about one SD on average
    sd = load_directions()["border_luma"].sd
    border = {lv: luma(apply_exposure(images, lv))[:, border_mask((64, 64))].mean(axis=1) for lv in (-2, -1, 0, 1, 2)}
    means = [border[lv].mean() for lv in (-2, -1, 0, 1, 2)]
    assert np.all(np.diff(means) > 0), means
    assert 0.75 < (means[3] - means[1]) / 2 / sd < 1.25, (means, sd, EV_PER_SD)


def test_skin_search_holds_exposure_within_tolerance(faces):
    gen, measurer, _, _ = faces
    levels = ProtectedSpec().levels
    z0 = gen.latents(range(16))
    tol = 5.0
    found = search_skin_levels(gen, measurer, z0, levels, load_directions(), max_steps=12, exposure_tolerance=tol)
    kept = found.success.all(axis=1)
    assert kept.mean() >= 0.85, found.reasons
    border = np.array([[found.measures[i][j]["measured_border_luma"] for j in range(len(levels))] for i in np.flatnonzero(kept)])
    ita = np.array([[found.measures[i][j]["measured_skin_ita"] for j in range(len(levels))] for i in np.flatnonzero(kept)])
    for j, lv in enumerate(levels):
        assert ((ita[:, j] >= lv.ita_min) & (ita[:, j] < lv.ita_max)).all()
    # every level within the tolerance of the reference (light) prototype, seed by seed
    assert np.abs(border - border[:, [0]]).max() <= tol + 1e-9
    # the prototypes' latents re-render to the prototypes' images
    i = int(np.flatnonzero(kept)[0])
    np.testing.assert_array_equal(gen.render_latents(found.latents[i]), found.images[i])

    # the manipulation check reports it: every kept prototype in its bin, and the exposure change
    import pandas as pd

    rows = []
    for i in np.flatnonzero(kept):
        for j, lv in enumerate(levels):
            rows.append({"face_id": f"{i}-{lv.name}", "seed": int(i), "group": f"skin={lv.name}", "skin_tone": lv.name,
                         "edit_attr": "none", "edit_level": 0.0, **found.measures[i][j].to_dict()})
    check = manipulation_check(pd.DataFrame(rows), reference="light", levels=levels)
    in_bin = check[check.measure == IN_BIN]
    assert len(in_bin) == 3 and (in_bin.mean_change == 1.0).all()
    expo = check[(check.edit_attr == "skin_tone") & (check.measure == "measured_border_luma")]
    assert len(expo) == 2 and (expo.max_abs_change <= tol + 1e-9).all()


def test_quick_audit_holds_exposure_and_the_card_says_so(quick_run):
    import json
    import re
    from pathlib import Path

    from faceaudit.rundir import read_table

    run = Path(quick_run)
    gen = json.loads((run / "results" / "generation.json").read_text())
    levels = gen["levels"]
    assert gen["kept_fraction"] >= 0.9
    for name, info in levels.items():
        if name != "light":
            assert info["border_luma_change_max_abs"] <= 5.0, (name, info)
    check = read_table(run / "results" / "manipulation_check.parquet")
    skin = check[check.edit_attr == "skin_tone"]
    assert (skin[skin.measure == IN_BIN].mean_change == 1.0).all()
    border = skin[skin.measure == "measured_border_luma"]
    assert len(border) == 2 and (border.max_abs_change <= 5.0).all()
    assert {"identity_sim:dlib", "identity_sim:sface"} <= set(skin.measure)
    # the exposure edit is in the run, monotone in border luma
    expo = check[(check.edit_attr == "exposure") & check.is_target].sort_values("edit_level")
    assert list(expo.measure.unique()) == ["measured_border_luma"] and np.all(np.diff(expo.mean_change) > 0)
    # the model card states both numbers: the largest exposure change and the reach per bin
    page = (run / "report.html").read_text(encoding="utf-8")
    m = re.search(r"differs from the reference prototype by more than ([0-9.]+)/255 in border luma", page)
    assert m and float(m.group(1)) <= 5.0
    worst = max(info["border_luma_change_max_abs"] for name, info in levels.items() if name != "light")
    assert float(m.group(1)) == pytest.approx(worst, abs=0.006)
    assert "seeds reaching each skin bin:" in page


def test_protocol_keys_for_exposure_and_mechanism():
    from faceaudit.core.errors import BadInput
    from faceaudit.protocol import parse_protocol

    base = {"name": "x", "n_seeds": 2, "edits": [{"attribute": "exposure", "levels": [-1, 1]}], "models": ["dlib"]}
    p = parse_protocol(base)
    assert p.generator.exposure_tolerance == 5.0 and p.protected.mechanism == "latent"
    assert parse_protocol({**base, "generator": {"exposure_tolerance": None}}).generator.exposure_tolerance is None
    with pytest.raises(BadInput, match="generator.exposure_tolerance"):
        parse_protocol({**base, "generator": {"exposure_tolerance": 0}})
    with pytest.raises(BadInput, match="protected.mechanism"):
        parse_protocol({**base, "protected": {"mechanism": "paint"}})
