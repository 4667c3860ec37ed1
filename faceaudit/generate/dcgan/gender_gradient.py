"""Each seed's own way towards a gender level: the latent gradient of the placing classifiers.

The gender direction of the directions file is a population average (a ridge fit over 3,000 random
faces, cross-validated R^2 0.25). Along it, faceres' P(male) of about a third of the seeds stops
falling well inside the shift limit: the average direction is not the way *those* faces become
female-presenting. Their own way is the gradient of a gender logit with respect to the latent,
taken through the generator, the crop and the classifier:

    z -> DCGAN -> 64x64 image -> the classifier's crop (its warp of the image, with the landmarks or
    box YuNet finds on the render held fixed) -> classifier -> the gender logit

Two classifiers enter, neither of them the validation classifier (oarriaga):

* **faceres** (the placing classifier): its logit before the sigmoid (``gender_pred/BiasAdd``) on
  its loose aligned crop. Its gradient alone is a short way into faceres' band that the validation
  classifier mostly does not see (seeds 0-29: it agreed on 75% of the cells finished that way);
* **GEAR** (``gear`` of human-models, trained on UTKFace, a different data set and architecture):
  its gender logit (male minus female, before the softmax) on its own crop. Its gradient, added
  after normalising each to unit length, keeps the direction on what two unrelated gender models
  both respond to, and the validation classifier then agreed on 100% of 21 finished cells.

Each gradient is averaged over the crop and its horizontal mirror. faceres' own gradient is also
returned: its component along the combined direction says whether a move there lowers or raises the
placing logit. The joint placement uses the direction for its local-gradient finish
(:mod:`faceaudit.generate.dcgan.joint_placement`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from faceaudit.measure import gear
from faceaudit.models.align import loose_template, similarity_transform

#: the node before faceres' gender sigmoid: its logit (no saturation at P(male) near 0 or 1)
FACERES_LOGIT_NODE = "gender_pred/BiasAdd"
#: the node before GEAR's gender softmax: [male, female] logits (human.js: index 0 is male)
GEAR_LOGITS_NODE = "StatefulPartitionedCall/model_1/gender_output/BiasAdd"

__all__ = ["GenderLogitGradient", "affine_grid_for"]


def affine_grid_for(matrix: np.ndarray, src_size: int, dst_size: int) -> torch.Tensor:
    """The ``grid_sample`` grid that reproduces ``cv2.warpAffine(src, matrix, (dst, dst))``.

    ``matrix`` maps source pixel coordinates to destination ones (pixel centres at integers), so
    each destination pixel samples the source at ``matrix^-1 (u, v)``, normalised as
    ``align_corners=True`` expects (-1 and 1 are the centres of the first and last pixel).

    Parameters
    ----------
    matrix : ndarray
        ``[2, 3]`` forward affine matrix (source -> destination).
    src_size, dst_size : int
        Side of the square source and destination images.

    Returns
    -------
    Tensor
        ``[dst, dst, 2]`` sampling grid (x, y), in [-1, 1] where it falls inside the source.

    Examples
    --------
    >>> grid = affine_grid_for(np.array([[2.0, 0, 0], [0, 2.0, 0]]), 4, 8)  # a 2x upscale
    >>> [round(float(v), 3) for v in grid[2, 2]]  # destination (2, 2) samples source (1, 1)
    [-0.333, -0.333]
    """
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]
    v, u = np.meshgrid(np.arange(dst_size, dtype=np.float64), np.arange(dst_size, dtype=np.float64), indexing="ij")
    src = np.stack([u, v, np.ones_like(u)], axis=-1) @ inv.T  # [dst, dst, 2] source (x, y)
    return torch.from_numpy(src * (2.0 / (src_size - 1)) - 1.0).float()


class GenderLogitGradient:
    """Gradients of faceres' and GEAR's gender logits with respect to the latent (module docstring).

    Parameters
    ----------
    generator
        A :class:`~faceaudit.generate.dcgan.generator.DCGANGenerator` (its torch ``net``).
    faceres
        A :class:`~faceaudit.models.faceres.FaceResRecognizer` (its TFJS graph, detector, input
        size and template scale).

    Examples
    --------
    >>> from faceaudit.generate.dcgan.generator import DCGANGenerator
    >>> from faceaudit.models.faceres import FaceResRecognizer
    >>> gen = DCGANGenerator(device="cpu")
    >>> gradient = GenderLogitGradient(gen, FaceResRecognizer(device="cpu"))
    >>> logit, grad, direction = gradient(gen.latents([0, 1]))
    >>> grad.shape, direction.shape, bool(np.isfinite(logit).all())
    ((2, 100), (2, 100), True)
    """

    def __init__(self, generator, faceres):
        from faceaudit.models import human_models
        from faceaudit.models.tfjs_graph import TfjsGraph

        self.net = generator.net
        self.render = generator.render_latents
        self.device = generator.device
        self.detector = faceres.detector
        self.size = faceres.input_size
        self.template = loose_template(self.size, faceres.face_fraction)
        self.faceres = faceres.graph.module([FACERES_LOGIT_NODE], device=self.device)
        gear_json, _ = human_models.model_files(gear.GRAPH)
        self.gear = TfjsGraph.load(gear_json).module([GEAR_LOGITS_NODE], device=self.device)
        self.batch_size = 16

    def __call__(self, latents: np.ndarray, images: Sequence[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(faceres logit [N], its gradient [N, 100], the combined direction [N, 100])``.

        Parameters
        ----------
        latents : ndarray
            ``[N, 100]`` latents.
        images : sequence of ndarray, optional
            Their renders (rendered here when not given): YuNet's landmarks and box on them fix
            each classifier's crop while differentiating.

        Returns
        -------
        tuple of ndarray
            faceres' logit (mirror-averaged, float pixels), its gradient, and the sum of the two
            classifiers' unit gradients; NaN rows where YuNet finds no face.
        """
        latents = np.asarray(latents, dtype=np.float32)
        if images is None:
            images = self.render(latents)
        if len(latents) > self.batch_size:  # bounded memory: autograd keeps every activation
            parts = [self(latents[i : i + self.batch_size], images[i : i + self.batch_size])
                     for i in range(0, len(latents), self.batch_size)]
            return tuple(np.concatenate(arrays) for arrays in zip(*parts))  # type: ignore[return-value]
        n, dim = latents.shape
        logits = np.full(n, np.nan)
        grads = np.full((n, dim), np.nan)
        directions = np.full((n, dim), np.nan)
        face_grids, gear_grids, rows = [], [], []
        for i, image in enumerate(images):
            det = self.detector.detect(np.ascontiguousarray(image))
            if det is None:
                continue
            face_grids.append(affine_grid_for(similarity_transform(det.landmarks, self.template), image.shape[0], self.size))
            gear_grids.append(affine_grid_for(gear.crop_matrix(det), image.shape[0], gear.INPUT_SIZE))
            rows.append(i)
        if not rows:
            return logits, grads, directions
        k = len(rows)
        z = torch.from_numpy(latents[rows]).to(self.device).view(k, -1, 1, 1).requires_grad_(True)
        with torch.enable_grad():
            pixels = (self.net(z).clamp(-1, 1) + 1.0) * 127.5  # [k, 3, 64, 64], 0..255 as the renders
            faceres_logit = self._mirror_mean(self.faceres, pixels, face_grids, k)
            gear_out = self._mirror_mean(self.gear, pixels / 255.0, gear_grids, k, male_minus_female=True)
            (g_faceres,) = torch.autograd.grad(faceres_logit.sum(), z, retain_graph=True)
            (g_gear,) = torch.autograd.grad(gear_out.sum(), z)
        g_faceres, g_gear = g_faceres.reshape(k, -1), g_gear.reshape(k, -1)
        combined = g_faceres / g_faceres.norm(dim=1, keepdim=True) + g_gear / g_gear.norm(dim=1, keepdim=True)
        logits[rows] = faceres_logit.detach().cpu().double().numpy()
        grads[rows] = g_faceres.cpu().double().numpy()
        directions[rows] = combined.cpu().double().numpy()
        return logits, grads, directions

    def _mirror_mean(self, graph, pixels: torch.Tensor, grids: list, k: int, male_minus_female: bool = False) -> torch.Tensor:
        crops = F.grid_sample(pixels, torch.stack(grids).to(self.device), mode="bilinear",
                              padding_mode="border", align_corners=True)
        crops = torch.cat([crops, crops.flip(-1)])  # the crop and its mirror
        (out,) = graph(crops.permute(0, 2, 3, 1).contiguous())
        if male_minus_female:
            out = out[:, 0] - out[:, 1]  # male minus female logit
        return out.reshape(2, k).mean(0)
