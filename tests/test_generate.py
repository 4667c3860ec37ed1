"""The DCGAN generator: determinism, weights loading, and the face table design helpers."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.core.errors import BadInput
from faceaudit.generate.dcgan.generator import DCGANGenerator, load_dcgan, seed_latents
from faceaudit.generate.faces import encode_png, face_id


@pytest.fixture(scope="module")
def gen():
    return DCGANGenerator(protocol_seed=3, device="cpu")


def test_same_seed_same_bytes_regardless_of_batch(gen):
    a = gen.render_latents(gen.latents([5, 6, 7]))
    b = gen.render_latents(gen.latents(list(range(100))))[5:8]
    c = DCGANGenerator(protocol_seed=3, device="cpu").render_latents(gen.latents([7]))
    assert a.dtype == np.uint8 and a.shape == (3, 64, 64, 3)
    assert np.array_equal(a, b)
    assert np.array_equal(a[2:], c)
    assert encode_png(a[0]) == encode_png(b[0])


def test_latents_depend_on_both_seeds():
    z = seed_latents([1, 2], protocol_seed=0, truncation=0)
    assert not np.allclose(z[0], z[1])
    assert np.array_equal(seed_latents([2], 0, 0)[0], z[1])
    assert not np.allclose(seed_latents([1], 1, 0)[0], z[0])
    assert np.abs(seed_latents(range(50), 0, 1.5)).max() <= 1.5


def test_faces_are_not_blank_and_differ_between_seeds(gen):
    imgs = gen.render_latents(gen.latents(range(8)))
    assert imgs.std() > 20
    assert len({im.tobytes() for im in imgs}) == 8


def test_missing_weights_is_one_line_bad_input(tmp_path):
    missing = tmp_path / "nope" / "weights.tar"
    with pytest.raises(BadInput) as err:
        load_dcgan(missing)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


def test_face_ids_are_readable_and_unique():
    assert face_id(12, "dark") == "s00012_dark_none_0"
    assert face_id(12, "dark", "yaw", 1.0) == "s00012_dark_yaw_+1.0"
    assert face_id(12, "dark", "yaw", -0.25) == "s00012_dark_yaw_-0.25"
    assert face_id(12, "dark", "yaw", 1.25) != face_id(12, "dark", "yaw", 1.2)


def test_diffusion_backend_fails_with_one_line():
    from faceaudit.core.errors import ModelUnavailable
    from faceaudit.generate.diffusion.generator import DiffusionGenerator

    with pytest.raises(ModelUnavailable) as err:
        DiffusionGenerator(model_id="faceaudit/definitely-not-cached")
    assert "\n" not in str(err.value) and "diffusion" in str(err.value)
