"""Optional identity conditioning: an IP-Adapter FaceID-style adapter driven by the prototype's embedding.

diffusers' own machinery does the work: ``pipe.load_ip_adapter`` reads the adapter (``image_proj``
= a FaceID projection from an identity embedding to 4 extra context tokens, ``ip_adapter`` = the
per-layer ``to_k_ip``/``to_v_ip`` weights) and installs ``IPAdapterAttnProcessor2_0`` on every
cross-attention layer; the pipeline call gets the embeddings through ``ip_adapter_image_embeds``.

What drives it: FaceID adapters are trained on insightface (ArcFace) embeddings. faceaudit embeds the
seed's *prototype* with one of its own recognizers (``embedder``, default ``insightface``; the
adapter's input width must equal the recognizer's embedding width), L2-normalised. The prototype
itself is rendered unconditioned (it does not exist before it is rendered); its edits are then
conditioned on its embedding. A prototype in which the recognizer finds no face conditions its edits
on the zero embedding, the same input the negative (unconditional) half of guidance gets.

Coexistence with identity sharing: ``load_ip_adapter`` replaces every attention processor, so it runs
first; :func:`faceaudit.generate.diffusion.identity_sharing.install` then wraps all processors, the adapter's
cross-attention ones included. Cross-attention calls pass through the wrapper untouched (shared
attention only extends self-attention), so the two act on different layers of each block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.core.errors import BadInput, ModelUnavailable

ADAPTER_ENV = "FACEAUDIT_WEIGHTS"
DEFAULT_EMBEDDER = "insightface"


def resolve_adapter_file(spec: str) -> Path:
    """A local adapter file (``.bin`` torch state dict or ``.safetensors``), or the file under
    ``$FACEAUDIT_WEIGHTS``; nothing is downloaded."""
    import os

    where = "generator.identity_adapter.weights"
    if not isinstance(spec, str) or not spec.strip():
        raise BadInput(f"{where}: expected a path to an IP-Adapter weights file, got {spec!r}")
    candidates = [Path(spec).expanduser()]
    if os.environ.get(ADAPTER_ENV):
        candidates.append(Path(os.environ[ADAPTER_ENV]) / spec)
    for c in candidates:
        if c.is_file():
            if c.suffix not in (".bin", ".safetensors"):
                raise BadInput(f"{where}: {c} is neither a .bin nor a .safetensors IP-Adapter file")
            return c
    raise ModelUnavailable(f"{where}: adapter weights {spec!r} not found (nor under ${ADAPTER_ENV}); "
                           f"download an IP-Adapter FaceID file (e.g. ip-adapter-faceid_sd15.bin) and name its path")


class IdentityAdapter:
    """Loads the adapter into ``pipe`` and turns prototype images into ``ip_adapter_image_embeds``."""

    def __init__(self, pipe, weights: str, scale: float, embedder: Any, device: str):
        if not 0.0 <= scale <= 2.0:
            raise BadInput(f"generator.identity_adapter.scale: must be in [0, 2], got {scale}")
        self.path = resolve_adapter_file(weights)
        self.scale = float(scale)
        self.embedder = embedder
        self.device = device
        try:
            pipe.load_ip_adapter(str(self.path.parent), subfolder="", weight_name=self.path.name,
                                 image_encoder_folder=None, local_files_only=True)
        except Exception as err:  # a wrong format surfaces as KeyError/ValueError/RuntimeError from diffusers
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise BadInput(f"generator.identity_adapter.weights: {self.path} is not an IP-Adapter this pipeline can load ({first})") from None
        proj = pipe.unet.encoder_hid_proj.image_projection_layers[0]
        if type(proj).__name__ != "IPAdapterFaceIDImageProjection":
            raise BadInput(f"generator.identity_adapter.weights: {self.path} is a {type(proj).__name__} adapter; "
                           f"faceaudit drives FaceID-style adapters (an identity embedding in), not CLIP-image ones")
        self.embed_dim = int(proj.ff.net[0].proj.in_features)
        dim = getattr(embedder, "embedding_dim", None)
        if dim is not None and int(dim) != self.embed_dim:
            raise BadInput(f"generator.identity_adapter.embedder: {getattr(embedder, 'name', embedder)!r} gives {dim}-d "
                           f"embeddings; the adapter takes {self.embed_dim}-d")
        pipe.set_ip_adapter_scale(self.scale)
        # diffusers' StableDiffusionPipeline treats ip_adapter_image_embeds as one embedding per
        # prompt and repeats it over the whole batch (prepare_ip_adapter_image_embeds(..., batch_size
        # * num_images_per_prompt)): with one embedding per image, every image would attend to every
        # image's identity tokens. faceaudit passes exactly one row per image, already in guidance
        # order, so the preparation is replaced by a check that the rows line up with the images.
        pipe.prepare_ip_adapter_image_embeds = self._prepared_embeds

    def prototype_embeddings(self, images: np.ndarray) -> np.ndarray:
        """``[N, D]`` float32, L2-normalised; zero rows where the recognizer found no face."""
        emb, _ = self.embedder.embed(list(images))
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape != (len(images), self.embed_dim):
            raise BadInput(f"generator.identity_adapter.embedder: expected [{len(images)}, {self.embed_dim}] embeddings, got {emb.shape}")
        ok = np.isfinite(emb).all(axis=1)
        out = np.zeros_like(emb)
        norms = np.linalg.norm(emb[ok], axis=1, keepdims=True)
        out[ok] = emb[ok] / np.maximum(norms, 1e-12)
        return out

    @staticmethod
    def _prepared_embeds(ip_adapter_image, ip_adapter_image_embeds, device, n_images, do_cfg):
        if ip_adapter_image is not None or ip_adapter_image_embeds is None:
            raise RuntimeError("identity adapter: faceaudit passes precomputed embeddings, not images")
        rows = (2 if do_cfg else 1) * n_images
        for e in ip_adapter_image_embeds:
            if e.shape[0] != rows:
                raise RuntimeError(f"identity adapter: {e.shape[0]} embedding rows for {rows} image rows")
        return [e.to(device) for e in ip_adapter_image_embeds]

    def pipeline_embeds(self, embeddings: np.ndarray, use_cfg: bool, dtype) -> list:
        """``ip_adapter_image_embeds`` for one pipeline call: ``[negative; positive]`` with guidance,
        the negative half being zeros (as in the FaceID reference usage)."""
        import torch

        pos = torch.as_tensor(np.asarray(embeddings, dtype=np.float32)).unsqueeze(1)  # [N, 1, D]
        if use_cfg:
            pos = torch.cat([torch.zeros_like(pos), pos])
        return [pos.to(self.device, dtype)]
