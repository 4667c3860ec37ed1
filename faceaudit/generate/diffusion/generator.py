"""A text-to-image diffusion backend (``pip install 'faceaudit[diffusion]'`` + a diffusers model folder).

Paired design with diffusion; what holds a seed's identity fixed (docs/generator.md, "Diffusion"):

1. **the initial latent**: drawn from ``(protocol seed, face seed)`` alone, on the CPU in float32,
   so every image of a seed (every group, every edit) starts from the same noise on any device;
   stochastic schedulers get a per-seed noise generator too;
2. **shared self-attention** (:mod:`faceaudit.generate.diffusion.identity_sharing`): an edit's self-attention
   layers also attend to the keys and values of its prototype (same seed, same group), with
   strength ``identity_sharing``;
3. the prompt: only the slots of the group and the edit differ (:mod:`faceaudit.generate.diffusion.prompts`).

Nothing is downloaded unless asked: weights are resolved by
:mod:`faceaudit.generate.diffusion.weights`; a missing model is a one-line ModelUnavailable.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput, ModelUnavailable
from faceaudit.generate.base import Edit, Generator, RenderResult
from faceaudit.generate.diffusion.prompts import DEFAULT_NEGATIVE, DEFAULT_TEMPLATE, NEUTRAL_PHRASE, PromptBuilder

DEFAULT_MODEL = "stabilityai/sd-turbo"
#: images per pipeline call on the CPU (memory is not the limit there; time is)
CPU_BATCH = 4
#: upper bound of the batch chosen from free GPU memory
MAX_BATCH = 16
#: fraction of free GPU memory the batch may fill
MEMORY_HEADROOM = 0.7
#: UNet activations per image at 512 px in fp16 with classifier-free guidance (both halves), a
#: deliberately high figure for SD-1.x/2.x-class UNets with PyTorch SDPA; scales with pixel count
ACTIVATION_BYTES_512 = 1.0e9


def noise_seed(protocol_seed: int, seed: int) -> int:
    """One noise stream per (protocol seed, face seed): identical across groups and edits."""
    return int(np.random.SeedSequence([int(protocol_seed), int(seed)]).generate_state(1)[0])


def _one_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _quiet_libraries() -> None:
    # diffusers/transformers print loading bars and advice (install accelerate, ...) to stderr;
    # faceaudit has its own progress bars and reports problems as one-line errors
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()


class DiffusionGenerator(Generator):
    """A diffusers text-to-image pipeline (Stable Diffusion 1.x/2.x/XL family) behind :class:`Generator`."""

    name = "diffusion"

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL,
        protocol_seed: int = 0,
        device: str = "auto",
        resolution: int = 512,
        num_inference_steps: int = 20,
        guidance_scale: float = 5.0,
        identity_sharing: float = 0.8,
        batch_size: int | None = None,
        allow_download: bool = False,
        prompt: str = DEFAULT_TEMPLATE,
        negative_prompt: str = DEFAULT_NEGATIVE,
        neutral_phrase: str = NEUTRAL_PHRASE,
        slots: Mapping[str, Mapping[str, str]] | None = None,
        edit_phrases: Mapping[str, Mapping[str, str]] | None = None,
        identity_adapter: Mapping[str, Any] | None = None,
        adapter_embedder: Any = None,
    ):
        try:
            import torch
            from diffusers import DiffusionPipeline
        except ImportError as err:
            raise ModelUnavailable(f"diffusion: diffusers is not installed ({err.name}); pip install 'faceaudit[diffusion]'") from None
        from faceaudit.generate.diffusion.weights import check_tokenizer, resolve_model_dir
        from faceaudit.models.runtime import torch_device

        if not 0.0 <= identity_sharing <= 1.0:
            raise BadInput(f"generator.identity_sharing: must be in [0, 1], got {identity_sharing}")
        self.model_id = str(model_id)
        self.model_dir = resolve_model_dir(self.model_id, allow_download=allow_download, where="generator.model (diffusion)")
        self.device = torch_device(device)
        # fp16 halves memory and roughly doubles throughput on a GPU; CPUs have no fast fp16 path
        self.dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.protocol_seed = int(protocol_seed)
        self.resolution = int(resolution)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.identity_sharing = float(identity_sharing)
        self.prompts = PromptBuilder(prompt, slots, edit_phrases, neutral_phrase, negative_prompt)
        _quiet_libraries()
        try:
            with warnings.catch_warnings():
                # newer diffusers renamed torch_dtype to dtype; the old name works in every version >= 0.27
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                pipe = DiffusionPipeline.from_pretrained(str(self.model_dir), torch_dtype=self.dtype, local_files_only=True)
        except Exception as err:  # diffusers raises OSError, ValueError, KeyError, ... for a broken folder
            raise ModelUnavailable(f"generator.model (diffusion): cannot load {self.model_id!r} from {self.model_dir} ({_one_line(err)})") from None
        for needed in ("unet", "vae", "scheduler"):
            if getattr(pipe, needed, None) is None:
                raise BadInput(f"generator.model (diffusion): {self.model_id!r} is not a text-to-image UNet pipeline (no {needed})")
        check_tokenizer(getattr(pipe, "tokenizer", None), f"generator.model (diffusion): {self.model_id!r} tokenizer")
        check_tokenizer(getattr(pipe, "tokenizer_2", None), f"generator.model (diffusion): {self.model_id!r} tokenizer_2")
        if hasattr(pipe, "safety_checker") and pipe.safety_checker is not None:
            # the checker blacks out images it flags: a black face would be counted as a failure to
            # enrol of the group, an artefact of the generator, not of the recognizer under audit
            pipe.safety_checker = None
        self.pipe = pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        if self.device == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.adapter = None
        if identity_adapter:
            # before identity sharing: load_ip_adapter replaces every attention processor, and
            # sharing then wraps them all (identity_adapter.py, "Coexistence")
            self.adapter = self._load_adapter(identity_adapter, adapter_embedder)
        self.sharing = None
        if self.identity_sharing > 0:
            from faceaudit.generate.diffusion.identity_sharing import install

            self.sharing = install(self.pipe.unet, self.identity_sharing)
        self._recorded: tuple | None = None
        self._proto_identity: np.ndarray | None = None
        self.batch_size = int(batch_size) if batch_size else self.auto_batch_size()
        self.version = f"{self.model_id}@diffusers-{getattr(self.pipe.config, '_diffusers_version', '?')}"

    def _load_adapter(self, spec: Mapping[str, Any], embedder: Any):
        from faceaudit.generate.diffusion.identity_adapter import DEFAULT_EMBEDDER, IdentityAdapter

        if embedder is None:
            from faceaudit.models.registry import load_model

            embedder = load_model(str(spec.get("embedder") or DEFAULT_EMBEDDER), device=self.device)
        return IdentityAdapter(self.pipe, str(spec.get("weights", "")), float(spec.get("scale", 0.6)), embedder, self.device)

    def _set_adapter_scale(self, scale: float) -> None:
        # set on the processors directly: under identity sharing they are wrapped, and diffusers'
        # set_ip_adapter_scale only finds unwrapped IP-Adapter processors
        for proc in self.pipe.unet.attn_processors.values():
            proc = getattr(proc, "original", proc)
            if hasattr(proc, "to_k_ip"):
                proc.scale = [float(scale)] * len(proc.scale)

    # ---- memory -----------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        factor = int(getattr(self.pipe, "vae_scale_factor", 8))
        side = self.resolution // factor
        return (int(self.pipe.unet.config.in_channels), side, side)

    def shared_bytes_per_image(self) -> int:
        """Bytes of prototype keys/values kept per image for identity sharing (all layers, steps)."""
        if self.sharing is None:
            return 0
        _, side, _ = self.latent_shape
        n_levels = len(self.pipe.unet.config.block_out_channels)
        total = 0
        for name, module in self.pipe.unet.named_modules():
            if not name.endswith("attn1") or not hasattr(module, "to_k"):
                continue
            m = re.match(r"(down|up)_blocks\.(\d+)", name)
            level = n_levels - 1 if m is None else (int(m.group(2)) if m.group(1) == "down" else n_levels - 1 - int(m.group(2)))
            tokens = (side // 2**level) ** 2
            total += 2 * tokens * module.to_k.out_features
        cfg = 2 if self.guidance_scale > 1 else 1
        return total * cfg * self.num_inference_steps * (2 if self.dtype.itemsize == 2 else 4)

    def auto_batch_size(self) -> int:
        """Images per pipeline call: fixed on the CPU, from free memory on a GPU."""
        if self.device != "cuda":
            return CPU_BATCH
        import torch

        free, _ = torch.cuda.mem_get_info()
        per_image = ACTIVATION_BYTES_512 * (self.resolution / 512) ** 2 + self.shared_bytes_per_image()
        return int(max(1, min(MAX_BATCH, (MEMORY_HEADROOM * free) // per_image)))

    # ---- rendering --------------------------------------------------------------------------
    def initial_latents(self, seeds: Sequence[int]):
        """``[N, C, h, w]`` float32 CPU tensor: a function of (protocol seed, face seed) only."""
        import torch

        shape = self.latent_shape
        out = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(noise_seed(self.protocol_seed, s)),
                           dtype=torch.float32) for s in seeds]
        return torch.stack(out) if out else torch.zeros((0, *shape))

    def _call(self, seeds: Sequence[int], prompt: str, identity: np.ndarray | None = None) -> np.ndarray:
        """One pipeline call. With an identity adapter, ``identity`` ([N, D] prototype embeddings)
        conditions the images at the adapter's scale; ``None`` renders them unconditioned (scale 0)."""
        import torch

        latents = self.initial_latents(seeds).to(self.device, self.dtype)
        generators = [torch.Generator(self.device).manual_seed(noise_seed(self.protocol_seed, s) + 1) for s in seeds]
        use_cfg = self.guidance_scale > 1
        extra = {}
        if self.adapter is not None:
            self._set_adapter_scale(0.0 if identity is None else self.adapter.scale)
            emb = np.zeros((len(seeds), self.adapter.embed_dim), np.float32) if identity is None else identity
            extra["ip_adapter_image_embeds"] = self.adapter.pipeline_embeds(emb, use_cfg, self.dtype)
        with torch.inference_mode():
            out = self.pipe(
                prompt=[prompt] * len(seeds),
                negative_prompt=[self.prompts.negative] * len(seeds) if use_cfg else None,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                height=self.resolution,
                width=self.resolution,
                latents=latents,
                generator=generators,
                output_type="np",
                **extra,
            ).images
        out = np.asarray(out, dtype=np.float32)
        if not np.isfinite(out).all():
            raise BadInput(f"generator.model (diffusion): {self.model_id!r} produced NaN/inf pixels for {prompt!r}"
                           f"{' (fp16 overflow: try device: cpu or an fp16-safe VAE)' if self.dtype.itemsize == 2 else ''}")
        return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    def _render_batch(self, seeds: list[int], group: str | None, edit: Edit,
                      identity: np.ndarray | None = None) -> np.ndarray:
        proto = edit.attribute == "none" or edit.level == 0
        key = (group, tuple(seeds))
        if proto:
            if self.sharing is not None:
                self.sharing.start_recording()
            try:
                images = self._call(seeds, self.prompts.prompt(group, Edit()))
            finally:
                if self.sharing is not None:
                    self.sharing.stop()
            self._recorded = key
            self._proto_images = images
            self._proto_identity = None
            return images
        if (self.sharing is not None or self.adapter is not None) and self._recorded != key:
            # the edit needs this batch's prototype (keys/values, embedding): render it first
            self._render_batch(seeds, group, Edit())
        if self.adapter is not None and identity is None:
            if self._proto_identity is None:
                self._proto_identity = self.adapter.prototype_embeddings(self._proto_images)
            identity = self._proto_identity
        if self.sharing is None:
            return self._call(seeds, self.prompts.prompt(group, edit), identity)
        self.sharing.start_sharing()
        try:
            return self._call(seeds, self.prompts.prompt(group, edit), identity)
        finally:
            self.sharing.stop()

    def render(self, seeds: Sequence[int], group: str | None = None, edit: Edit | None = None,
               identity: np.ndarray | None = None) -> RenderResult:
        """Render ``seeds`` in ``group`` with ``edit``, ``batch_size`` seeds per pipeline call.

        With identity sharing, an edit needs the attention its prototype recorded: only the latest
        prototype batch is kept (on a GPU it can take gigabytes), so render batch by batch, the
        prototype (``edit=None``) first and then its edits, as the generate stage does; otherwise
        the prototype is rendered again for every edit batch (same images, more time).

        With an identity adapter, an edit is conditioned on its prototype's embedding; ``identity``
        ([len(seeds), D]) overrides that embedding (for checks that the conditioning is live)."""
        edit = edit or Edit()
        seeds = [int(s) for s in seeds]
        b = self.batch_size
        parts = [self._render_batch(seeds[i : i + b], group, edit, None if identity is None else np.asarray(identity)[i : i + b])
                 for i in range(0, len(seeds), b)]
        r = self.resolution
        images = np.concatenate(parts) if parts else np.zeros((0, r, r, 3), np.uint8)
        meta = pd.DataFrame({"seed": seeds, "group": group or "none", "edit_attr": edit.attribute,
                             "edit_level": float(edit.level), "prompt": self.prompts.prompt(group, edit) if seeds else ""})
        return RenderResult(images=images, metadata=meta)

    def release(self) -> None:
        """Drop recorded prototype attention (it can hold gigabytes on a GPU)."""
        if self.sharing is not None:
            self.sharing.clear()
        self._recorded = None
        self._proto_identity = None

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "model_id": self.model_id, "model_dir": str(self.model_dir),
                "steps": self.num_inference_steps, "guidance_scale": self.guidance_scale,
                "identity_sharing": self.identity_sharing, "batch_size": self.batch_size, "device": self.device,
                "dtype": str(self.dtype).replace("torch.", ""), "scheduler": type(self.pipe.scheduler).__name__,
                "pipeline": type(self.pipe).__name__, "prompt_template": self.prompts.template,
                **({"identity_adapter": str(self.adapter.path), "identity_adapter_scale": self.adapter.scale,
                    "identity_adapter_embedder": getattr(self.adapter.embedder, "name", "?")} if self.adapter else {})}
