"""``protected.mechanism: recolor``: skin pixels recoloured, every other pixel byte-identical."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceaudit.generate.dcgan import design as design_mod
from faceaudit.generate.dcgan.generator import DCGANGenerator
from faceaudit.generate.dcgan.recolor import face_skin_weights, recolor, recolor_skin_levels, skin_weights
from faceaudit.measure import FaceMeasurer
from faceaudit.measure.color import lab_to_srgb, srgb_to_lab
from faceaudit.measure.skin_mask import LEFT_EYE, LIPS, RIGHT_EYE
from faceaudit.protocol import ProtectedSpec, parse_protocol


@pytest.fixture(scope="module")
def found():
    gen = DCGANGenerator(protocol_seed=101, device="cpu")
    measurer = FaceMeasurer()
    z0 = gen.latents(range(10))
    images = gen.render_latents(z0)
    levels = ProtectedSpec().levels
    return images, levels, recolor_skin_levels(measurer, z0, images, measurer.measure(images), levels, max_steps=12)


def test_lab_round_trip_is_exact():
    codes = np.stack(np.meshgrid(np.arange(0, 256, 3), np.arange(0, 256, 5), np.arange(0, 256, 7)), -1).reshape(-1, 3)
    np.testing.assert_array_equal(lab_to_srgb(srgb_to_lab(codes.astype(np.uint8))), codes)


def test_only_pixels_inside_the_feathered_skin_mask_change(found):
    images, levels, res = found
    assert res.success.all(axis=1).mean() >= 0.8, res.reasons
    changed_any = 0
    # the weights the recolouring used: the face-mesh mask where the mesh finds the face
    measurer = FaceMeasurer()
    used, points = face_skin_weights(measurer, images)
    np.testing.assert_array_equal(points, res.landmarks)
    mesh = measurer.mesh_points(images, measurer.landmarks(images))
    assert np.isfinite(mesh).all(axis=(1, 2)).sum() >= 8
    for i in np.flatnonzero(res.success.all(axis=1)):
        w = used[i]
        if np.isfinite(mesh[i]).all():  # holes of the mesh mask: its own eye and lip polygons
            parts = [mesh[i][RIGHT_EYE], mesh[i][LEFT_EYE], mesh[i][LIPS]]
        else:  # holes of the landmark mask
            parts = [res.landmarks[i][list(idx)] for idx in (range(36, 42), range(42, 48), range(60, 68))]
        # eyes and lips are holes in the mask (their centres get no weight)
        for part in parts:
            cx, cy = np.round(part.mean(axis=0)).astype(int)
            assert w[cy, cx] < 0.5
        for j, lv in enumerate(levels):
            outside = w == 0
            np.testing.assert_array_equal(res.images[i, j][outside], images[i][outside])
            ita = res.measures[i][j]["measured_skin_ita"]
            assert lv.ita_min <= ita < lv.ita_max
            changed_any += int((res.images[i, j] != images[i]).any())
    assert changed_any > 0
    # and the same holds for a recolouring that is far from any level (no search, one call)
    i = int(np.flatnonzero(res.success.all(axis=1))[0])
    for w in (used[i], skin_weights(res.landmarks[i], images.shape[1:3])):  # mesh mask, landmark mask
        out = recolor(images[i], w, 0.5, -4.0)
        np.testing.assert_array_equal(out[w == 0], images[i][w == 0])
        assert (out[w > 0.5] != images[i][w > 0.5]).any(axis=-1).mean() > 0.9


def test_recolor_protocol_gives_the_same_tables(tmp_path):
    spec = {
        "name": "tiny-recolor", "seed": 3, "n_seeds": 3, "models": ["dlib"],
        "edits": [{"attribute": "lighting", "levels": [1]}, {"attribute": "exposure", "levels": [-1]}],
    }
    latent = design_mod.generate_faces(parse_protocol(spec), tmp_path / "latent", progress=False)
    spec["protected"] = {"mechanism": "recolor"}
    faces = design_mod.generate_faces(parse_protocol(spec), tmp_path / "recolor", progress=False)
    assert list(faces.columns) == list(latent.columns)
    info = json.loads((tmp_path / "recolor" / "results" / "generation.json").read_text())
    assert info["n_seeds_kept"] == faces.seed.nunique() >= 2
    assert (faces.groupby(["seed", "group"]).size() == 3).all()
    # the edited faces carry their level's skin colour: dark edits are darker-skinned than light ones
    edited = faces[faces.edit_attr == "lighting"].pivot(index="seed", columns="skin_tone", values="measured_skin_ita")
    assert (edited["dark"] < edited["light"]).all(), edited
