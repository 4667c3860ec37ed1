"""Measures on real DCGAN faces respond the right way to controlled pixel manipulations."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.measure import MEASURE_COLUMNS, FaceMeasurer
from faceaudit.measure.color import ita_degrees, srgb_to_lab


@pytest.fixture(scope="module")
def faces_and_measures():
    from faceaudit.generate.dcgan.generator import DCGANGenerator

    gen = DCGANGenerator(protocol_seed=0, device="cpu")
    images = gen.render_latents(gen.latents(range(40)))
    measurer = FaceMeasurer()
    return measurer, images, measurer.measure(images)


def test_lab_matches_reference_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [119, 119, 119]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-3)
    # sRGB red, CIELAB D65 (Bruce Lindbloom's calculator): 53.24, 80.09, 67.20
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)
    # mid grey 119 is L* = 50.0 (the ITA pivot)
    assert abs(lab[3, 0] - 50.0) < 0.1 and abs(lab[3, 1]) < 1e-3
    assert ita_degrees(70.0, 20.0) == pytest.approx(45.0)
    assert ita_degrees(30.0, 20.0) == pytest.approx(-45.0)


def test_landmarks_found_on_generated_faces(faces_and_measures):
    _, _, m = faces_and_measures
    assert list(m.columns[: len(MEASURE_COLUMNS)]) == MEASURE_COLUMNS
    assert m["measured_ok"].mean() >= 0.95
    ok = m[m["measured_ok"]]
    assert ok[MEASURE_COLUMNS].notna().all().all()
    # plausible ranges on these faces
    assert ok["measured_smile"].between(0.4, 1.6).all()
    assert ok["measured_yaw"].abs().lt(1.5).all()
    assert ok["measured_lighting"].abs().lt(1).all()


def test_no_face_gives_nan_and_not_ok(faces_and_measures):
    measurer, _, _ = faces_and_measures
    blank = np.full((2, 64, 64, 3), 128, dtype=np.uint8)
    m = measurer.measure(blank)
    assert not m["measured_ok"].any()
    assert m[["measured_skin_ita", "measured_yaw", "measured_lighting", "measured_smile"]].isna().all().all()
    # brightness needs no landmarks: mid grey 128 is L* ~ 53.6
    np.testing.assert_allclose(m["measured_brightness"], 53.585, atol=0.01)
    np.testing.assert_allclose(m["measured_contrast"], 0.0, atol=1e-4)


def test_darkening_lowers_ita_and_brightness(faces_and_measures):
    measurer, images, m = faces_and_measures
    darker = (images.astype(np.float64) * 0.7).round().astype(np.uint8)
    d = measurer.measure(darker)
    both = m["measured_ok"] & d["measured_ok"]
    assert both.sum() >= 30
    assert (d.loc[both, "measured_skin_ita"] < m.loc[both, "measured_skin_ita"]).mean() >= 0.95
    assert (d["measured_brightness"] < m["measured_brightness"]).all()
    assert (d["measured_contrast"] < m["measured_contrast"]).all()


def test_warming_raises_skin_b(faces_and_measures):
    measurer, images, m = faces_and_measures
    warm = images.astype(np.int32)
    warm[..., 0] += 12
    warm[..., 2] -= 12
    w = measurer.measure(np.clip(warm, 0, 255).astype(np.uint8))
    both = m["measured_ok"] & w["measured_ok"]
    assert (w.loc[both, "measured_skin_b"] > m.loc[both, "measured_skin_b"]).mean() >= 0.95


def test_mirroring_flips_yaw_and_lighting(faces_and_measures):
    measurer, images, m = faces_and_measures
    f = measurer.measure(np.ascontiguousarray(images[:, :, ::-1]))
    both = m["measured_ok"] & f["measured_ok"]
    for col in ("measured_yaw", "measured_lighting"):
        a, b = m.loc[both, col].to_numpy(), f.loc[both, col].to_numpy()
        # sign flips: strongly negatively correlated, and b ~ -a
        assert np.corrcoef(a, b)[0, 1] < -0.85, col
        assert np.median(np.abs(a + b)) < 0.5 * np.median(np.abs(a)), col
    # mirror-invariant measures stay put
    np.testing.assert_allclose(f["measured_brightness"], m["measured_brightness"], atol=1e-6)
    assert np.corrcoef(m.loc[both, "measured_smile"], f.loc[both, "measured_smile"])[0, 1] > 0.6


def test_one_sided_light_moves_lighting(faces_and_measures):
    measurer, images, m = faces_and_measures
    ramp = np.linspace(0.6, 1.2, 64)[None, None, :, None]  # brighter towards the image right
    lit = np.clip(images.astype(np.float64) * ramp, 0, 255).round().astype(np.uint8)
    r = measurer.measure(lit)
    both = m["measured_ok"] & r["measured_ok"]
    assert (r.loc[both, "measured_lighting"] > m.loc[both, "measured_lighting"]).mean() >= 0.95


def test_worker_processes_give_identical_rows(faces_and_measures):
    from faceaudit.measure.parallel import PooledMeasurer, measure_workers

    _, images, m = faces_and_measures
    with PooledMeasurer(2) as pooled:
        again = pooled.measure(images[:12])
    import pandas as pd

    pd.testing.assert_frame_equal(again, m.iloc[:12].reset_index(drop=True))
    assert measure_workers(10) == 1  # small jobs stay in-process
