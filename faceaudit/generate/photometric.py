"""Pixel-level nuisance edits (today: exposure), applied to any backend's rendered images.

A pixel edit changes the photograph, not what the generator renders: the generate stage of every
backend renders the cell's prototype and applies :func:`apply_pixel_edit` to its pixels for each
level of a pixel edit (:data:`PIXEL_EDITS`), instead of asking the generator for the edit. So a
pixel edit needs no latent direction (DCGAN) and no prompt phrase (diffusion).

Global exposure, applied to pixels like a camera's exposure setting.

A latent direction for "exposure" would change what the generator renders (a darker room, darker
hair) rather than how the photograph was exposed. A camera's exposure scales the light reaching
the sensor, so the edit here is exactly that: every pixel's linear-light RGB is multiplied by
``2 ** ev`` and encoded back to sRGB (IEC 61966-2-1), clipping at white. The generator is not
involved, so identity, pose and skin are untouched by construction; only the photograph changes.

Levels are in SDs, like every nuisance edit: level ``v`` applies ``ev = v * EV_PER_SD``, where
:data:`EV_PER_SD` is the exposure change that moves the border luma (``measured_border_luma``,
faceaudit.measure.exposure) by one SD of its spread over random faces *on average* (central
difference over +-1 level). It was calibrated with :func:`calibrate_ev_per_sd` on 500 random
faces (``fit_latents(500, seed=1)``, border-luma SD 32.5 from the directions file: 1.185 EV;
docs/generator.md, "Exposure edit"); the manipulation check
reports what each level achieved. Clipping makes the response smaller above 0 for bright images.
"""

from __future__ import annotations

import numpy as np

from faceaudit.measure.color import _SRGB_TO_LINEAR

#: exposure value (stops) per SD of border luma over random faces (calibration: module docstring)
EV_PER_SD = 1.185
EXPOSURE_ATTRIBUTE = "exposure"
#: nuisance edits applied to the prototype's pixels instead of asking the generator for them
PIXEL_EDITS = (EXPOSURE_ATTRIBUTE,)


def _encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    return np.floor(srgb * 255.0 + 0.5).astype(np.uint8)


def apply_exposure_ev(images: np.ndarray, ev: float) -> np.ndarray:
    """``images [..., 3]`` uint8 sRGB with linear light scaled by ``2 ** ev`` (float64 arithmetic)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"exposure edit expects uint8 RGB, got {images.dtype}")
    linear = _SRGB_TO_LINEAR.astype(np.float64)[images]
    return _encode(linear * float(2.0 ** ev))


def apply_exposure(images: np.ndarray, level_sd: float) -> np.ndarray:
    """The exposure edit at ``level_sd`` SDs (module docstring)."""
    return apply_exposure_ev(images, float(level_sd) * EV_PER_SD)


def calibrate_ev_per_sd(images: np.ndarray, border_sd: float, lo: float = 0.05, hi: float = 3.0) -> float:
    """EV such that +-EV changes the mean border luma of ``images`` by ``border_sd`` (central difference)."""
    from faceaudit.measure.exposure import border_mask, luma

    ring = border_mask(images.shape[1:3])

    def gain(ev: float) -> float:
        up = luma(apply_exposure_ev(images, ev))[:, ring].mean(axis=1)
        down = luma(apply_exposure_ev(images, -ev))[:, ring].mean(axis=1)
        return float(np.mean(up - down) / 2)

    for _ in range(40):  # bisection: the gain grows with ev
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gain(mid) < border_sd else (lo, mid)
    return (lo + hi) / 2


def is_pixel_edit(attribute: str) -> bool:
    """Whether ``attribute`` is applied to pixels (by every backend) rather than rendered.

    Examples
    --------
    >>> is_pixel_edit("exposure"), is_pixel_edit("yaw")
    (True, False)
    """
    return attribute in PIXEL_EDITS


def apply_pixel_edit(images: np.ndarray, attribute: str, level: float) -> np.ndarray:
    """``images`` (``[..., 3]`` uint8 RGB) with the pixel edit ``attribute`` at ``level`` SDs.

    Parameters
    ----------
    images : np.ndarray
        uint8 RGB images, one or a stack.
    attribute : str
        One of :data:`PIXEL_EDITS`.
    level : float
        The edit level in SDs of the attribute's measure.

    Returns
    -------
    np.ndarray
        The edited images, same shape, uint8.

    Examples
    --------
    >>> img = np.full((1, 2, 2, 3), 100, np.uint8)
    >>> int(apply_pixel_edit(img, "exposure", 1.0)[0, 0, 0, 0]) > 100
    True
    """
    if attribute == EXPOSURE_ATTRIBUTE:
        return apply_exposure(images, level)
    raise ValueError(f"{attribute!r} is not a pixel edit (have {list(PIXEL_EDITS)})")
