"""Real generated faces for the model and harness tests (DCGAN weights from gan_face_generate).

Uses faceaudit.generate.dcgan.generator when it is there; otherwise builds the standard DCGAN generator here
and loads the same weights, so these tests do not depend on the generator package being done.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _inline_render(z: np.ndarray) -> np.ndarray:
    nz, ngf = 100, 64
    layers: list[nn.Module] = []
    chans = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
    for i in range(4):
        layers += [
            nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
            nn.BatchNorm2d(chans[i + 1]),
            nn.ReLU(True),
        ]
    layers += [nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh()]
    net = nn.Sequential(*layers)
    root = Path(list(importlib.util.find_spec("gan_face_generate").submodule_search_locations)[0])
    state = torch.load(root / "weights.tar", map_location="cpu", weights_only=True)["netG_state_dict"]
    net.load_state_dict({k.removeprefix("main."): v for k, v in state.items()})
    net.eval()
    with torch.inference_mode():
        x = net(torch.from_numpy(z.astype(np.float32)).view(-1, nz, 1, 1))
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@lru_cache(maxsize=1)
def _renderer():
    try:
        from faceaudit.generate.dcgan.generator import DCGANGenerator

        gen = DCGANGenerator(device="cpu")
        return gen.render_latents
    except ImportError:
        return _inline_render


def latents(seeds, truncation: float = 2.0) -> np.ndarray:
    z = np.stack([np.random.default_rng([12345, s]).standard_normal(100) for s in seeds])
    return np.clip(z, -truncation, truncation)


def render(z: np.ndarray) -> np.ndarray:
    """``[N, 100]`` latents -> ``[N, 64, 64, 3]`` uint8 RGB faces."""
    return np.asarray(_renderer()(np.asarray(z, dtype=np.float32)))


@lru_cache(maxsize=4)
def faces(n: int = 8, first_seed: int = 0) -> np.ndarray:
    return render(latents(range(first_seed, first_seed + n)))


def genuine_impostor_faces(n: int = 6, step: float = 0.15):
    """Two images per identity: a latent and a slightly perturbed copy (same synthetic person).

    Returns ``(a [n], b [n])``: ``a[i]``/``b[i]`` are genuine pairs, ``a[i]``/``b[j]`` impostors.
    """
    z = latents(range(100, 100 + n))
    noise = np.random.default_rng(7).standard_normal(z.shape)
    return render(z), render(z + step * noise)


def noise_image(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def blank_image(size: int = 64, value: int = 128) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)
