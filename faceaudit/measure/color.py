"""sRGB -> CIELAB (D65), vectorised over whole batches of uint8 images.

Written out rather than imported: scikit-image is not a dependency, and OpenCV's 8-bit Lab path
rescales L* to 0..255 and quantises a* and b*, which is too coarse for ITA on dark skin.
Formulas: IEC 61966-2-1 (sRGB transfer curve and primaries), CIE 15 (XYZ -> L*a*b*).
"""

from __future__ import annotations

import numpy as np

# linear sRGB -> XYZ, D65 white (IEC 61966-2-1)
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ_NORMALISED = (_RGB_TO_XYZ / _D65_WHITE[:, None]).astype(np.float32)

# uint8 -> linear lookup table: the transfer curve is the expensive part, and there are only
# 256 possible inputs.
_codes = np.arange(256, dtype=np.float64) / 255.0
_SRGB_TO_LINEAR = np.where(_codes <= 0.04045, _codes / 12.92, ((_codes + 0.055) / 1.055) ** 2.4).astype(np.float32)


_DELTA = 6.0 / 29.0


def _f(t: np.ndarray) -> np.ndarray:
    out = np.cbrt(t)
    low = t <= np.float32(_DELTA**3)
    out[low] = t[low] * np.float32(1.0 / (3 * _DELTA**2)) + np.float32(4.0 / 29.0)
    return out


def srgb_to_lab(images: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[..., 3]`` -> float32 ``[..., 3]`` with L* in 0..100 and a*, b* roughly -128..127."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"srgb_to_lab expects uint8 RGB, got {images.dtype}")
    r, g, b = (_SRGB_TO_LINEAR[images[..., c]] for c in range(3))
    # White-point normalisation folded into the matrix. Explicit channel sums: a (N*H*W, 3) @ (3, 3)
    # matmul is several times slower in numpy than three fused multiply-adds.
    m = _RGB_TO_XYZ_NORMALISED
    fx = _f(m[0, 0] * r + m[0, 1] * g + m[0, 2] * b)
    fy = _f(m[1, 0] * r + m[1, 1] * g + m[1, 2] * b)
    fz = _f(m[2, 0] * r + m[2, 1] * g + m[2, 2] * b)
    lab = np.empty(images.shape, dtype=np.float32)
    lab[..., 0] = 116.0 * fy - 16.0
    lab[..., 1] = 500.0 * (fx - fy)
    lab[..., 2] = 200.0 * (fy - fz)
    return lab


def ita_degrees(lightness: np.ndarray | float, b_star: np.ndarray | float) -> np.ndarray:
    """Individual Typology Angle (Chardon et al. 1991): ``atan2(L* - 50, b*)`` in degrees."""
    return np.degrees(np.arctan2(np.asarray(lightness, dtype=np.float64) - 50.0, np.asarray(b_star, dtype=np.float64)))


_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """float CIELAB (D65) ``[..., 3]`` -> uint8 sRGB, the inverse of :func:`srgb_to_lab` (clipped, rounded).

    Float64 throughout; a round trip ``lab_to_srgb(srgb_to_lab(x))`` returns ``x`` for every code.
    """
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0

    def finv(t: np.ndarray) -> np.ndarray:
        return np.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4.0 / 29.0))

    xyz = np.stack([finv(fx), finv(fy), finv(fz)], axis=-1) * _D65_WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    return np.floor(srgb * 255.0 + 0.5).astype(np.uint8)
