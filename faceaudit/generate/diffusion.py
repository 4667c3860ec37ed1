"""A text-to-image diffusion backend (optional: ``pip install faceaudit[diffusion]`` + hub weights).

Paired design with diffusion: a seed fixes the initial noise, and the group and the edit change
only the prompt, so every group of a seed starts from the same noise (as CausalFace does with
its generator's latent). Attribute levels are prompt phrases, not measured shifts: check what the
images really show with :mod:`faceaudit.measure` and the manipulation check before trusting them.

Nothing is downloaded implicitly: the model must be in the Hugging Face cache already (or
``allow_download=True``); otherwise loading fails with a one-line
:class:`~faceaudit.errors.ModelUnavailable`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from faceaudit.errors import ModelUnavailable
from faceaudit.generate.base import Edit, Generator, RenderResult

DEFAULT_MODEL = "stabilityai/sd-turbo"
BASE_PROMPT = "a passport-style photograph of the face of a {skin} adult person, {edits}, neutral grey background, sharp focus"
NEGATIVE_PROMPT = "cartoon, drawing, painting, multiple people, text, watermark, blurry"

#: group level -> prompt phrase
SKIN_PHRASES = {"light": "light-skinned", "intermediate": "medium brown-skinned", "dark": "dark-skinned"}


def edit_phrase(edit: Edit) -> str:
    """Prompt phrase for a signed edit level (|level| >= 2 gets a stronger adverb)."""
    a, lv = edit.attribute, edit.level
    if a == "none" or lv == 0:
        return "frontal view, even studio lighting, neutral expression"
    strong = abs(lv) >= 2
    if a == "lighting":
        side = "right" if lv > 0 else "left"
        return f"{'strong ' if strong else ''}light from the {side} side, the other side of the face in shadow"
    if a == "yaw":
        side = "right" if lv > 0 else "left"
        return f"head turned {'strongly ' if strong else 'slightly '}to the {side}"
    if a == "smile":
        if lv > 0:
            return "a broad toothy smile" if strong else "a slight smile"
        return "a frowning expression" if strong else "a serious expression"
    raise ValueError(f"diffusion: no prompt phrase for edit attribute {a!r}")


def build_prompt(group: str | None, edit: Edit | None) -> str:
    level = (group or "skin=intermediate").split("=", 1)[-1]
    skin = SKIN_PHRASES.get(level, f"{level}-skinned")
    return BASE_PROMPT.format(skin=skin, edits=edit_phrase(edit or Edit()))


class DiffusionGenerator(Generator):
    """Stable-Diffusion-family pipeline from ``diffusers`` behind the :class:`Generator` interface."""

    name = "diffusion"

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL,
        protocol_seed: int = 0,
        device: str = "auto",
        resolution: int = 128,
        num_inference_steps: int = 2,
        guidance_scale: float = 0.0,
        allow_download: bool = False,
    ):
        try:
            import torch
            from diffusers import AutoPipelineForText2Image
        except ImportError as err:
            raise ModelUnavailable(f"diffusion: diffusers is not installed ({err.name}); pip install 'faceaudit[diffusion]'") from None
        from faceaudit.models.runtime import torch_device

        self.device = torch_device(device)
        self.model_id = model_id
        self.protocol_seed = int(protocol_seed)
        self.resolution = int(resolution)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        try:
            self.pipe = AutoPipelineForText2Image.from_pretrained(
                model_id, torch_dtype=dtype, local_files_only=not allow_download
            ).to(self.device)
        except (OSError, ValueError, EnvironmentError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelUnavailable(
                f"diffusion: cannot load {model_id!r} from the Hugging Face cache ({first}); "
                f"download it once with network access or pass allow_download=True"
            ) from None
        self.pipe.set_progress_bar_config(disable=True)
        self.version = f"{model_id}@{getattr(self.pipe.config, '_diffusers_version', '?')}"

    def _noise_generator(self, seed: int):
        import torch

        # one noise stream per (protocol seed, face seed): identical across groups and edits
        mixed = int(np.random.SeedSequence([self.protocol_seed, int(seed)]).generate_state(1)[0])
        return torch.Generator(device=self.device).manual_seed(mixed)

    def render(self, seeds: Sequence[int], group: str | None = None, edit: Edit | None = None) -> RenderResult:
        import cv2

        prompt = build_prompt(group, edit)
        images = []
        for s in seeds:
            out = self.pipe(
                prompt=prompt,
                negative_prompt=NEGATIVE_PROMPT if self.guidance_scale > 1 else None,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                generator=self._noise_generator(s),
                output_type="np",
            ).images[0]
            img = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
            images.append(cv2.resize(img, (self.resolution, self.resolution), interpolation=cv2.INTER_AREA))
        edit = edit or Edit()
        meta = pd.DataFrame({"seed": list(seeds), "group": group or "none", "edit_attr": edit.attribute,
                             "edit_level": edit.level, "prompt": prompt})
        return RenderResult(images=np.stack(images) if images else np.zeros((0, self.resolution, self.resolution, 3), np.uint8), metadata=meta)

    def metadata(self) -> dict:
        return {**super().metadata(), "model_id": self.model_id, "steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale, "device": self.device}
