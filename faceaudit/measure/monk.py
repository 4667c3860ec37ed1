"""Monk Skin Tone (MST, 1-10) of the measured skin colour: the nearest of the ten published Monk
swatches in CIELAB by CIEDE2000.

The palette is the ten orbs of the Monk Skin Tone Scale (Ellis Monk, 2019; released with Google's
skin tone research, skintone.google), written here as sRGB hex codes and converted with
:func:`faceaudit.measure.color.srgb_to_lab` (D65), the conversion every other colour measure uses.
A face's skin colour is the per-channel median L*, a*, b* of the same skin pixels the ITA measure
pools (:func:`faceaudit.measure.attributes.skin_masks`), so ITA and Monk describe one colour.

Distance: CIEDE2000 (CIE 142-2001; implementation notes and test data of Sharma, Wu and Dalal,
Color Res. Appl. 30:21-30, 2005), written out in :func:`ciede2000` with kL = kC = kH = 1.
On these dim renders most skin lies below the palette's lightness (median skin L* ~ 39), so the
class reads mostly 6-10; like ITA it describes the rendered pixels, not a person's skin type.
"""

from __future__ import annotations

import numpy as np

from faceaudit.measure.color import srgb_to_lab

#: Monk Skin Tone Scale orbs MST-1 (lightest) .. MST-10 (darkest), sRGB
MONK_HEX = ["#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96", "#a07e56", "#825c43", "#604134", "#3a312a", "#292420"]


def hex_to_rgb(codes: list[str]) -> np.ndarray:
    """``["#rrggbb", ...]`` -> ``[N, 3]`` uint8.

    Examples
    --------
    >>> hex_to_rgb(["#ff8000"]).tolist()
    [[255, 128, 0]]
    """
    return np.array([[int(c.lstrip("#")[k : k + 2], 16) for k in (0, 2, 4)] for c in codes], dtype=np.uint8)


#: the palette in CIELAB (D65), ``[10, 3]`` float64
MONK_LAB = srgb_to_lab(hex_to_rgb(MONK_HEX)).astype(np.float64)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between CIELAB colours (broadcast over leading axes).

    Parameters
    ----------
    lab1, lab2 : array_like, ``[..., 3]``
        L*, a*, b*.

    Returns
    -------
    numpy.ndarray
        ΔE00, shape of the broadcast leading axes (kL = kC = kH = 1).

    Examples
    --------
    >>> round(float(ciede2000([50, 2.6772, -79.7751], [50, 0, -82.7485])), 4)  # Sharma et al. pair 1
    2.0425
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    # hue angles in degrees, 0..360; defined as 0 for achromatic colours (a' = b = 0)
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)
    dl = l2 - l1
    dc = c2p - c1p
    chroma_prod = c1p * c2p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_prod == 0, 0.0, dh)
    dH = 2 * np.sqrt(chroma_prod) * np.sin(np.radians(dh) / 2)
    l_bar = (l1 + l2) / 2
    cp_bar = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_bar = np.where(chroma_prod == 0, h_sum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dc / s_c) * (dH / s_h))


def monk_class(lab: np.ndarray) -> np.ndarray:
    """Monk class 1..10 of each CIELAB colour (nearest swatch by CIEDE2000); NaN where the colour is NaN.

    Parameters
    ----------
    lab : array_like, ``[N, 3]``
        Skin colours (L*, a*, b*).

    Returns
    -------
    numpy.ndarray
        float64 ``[N]``: 1 (lightest) .. 10 (darkest), NaN for a NaN colour.

    Examples
    --------
    >>> monk_class(MONK_LAB).tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    >>> monk_class([[np.nan, 0, 0]]).tolist()
    [nan]
    """
    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    out = np.full(len(lab), np.nan)
    ok = np.isfinite(lab).all(axis=1)
    if ok.any():
        d = ciede2000(lab[ok][:, None, :], MONK_LAB[None, :, :])
        out[ok] = d.argmin(axis=1) + 1
    return out


def skin_lab(lab: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-channel median L*, a*, b* of each image's skin pixels (``[N, 3]``, NaN rows without skin).

    ``lab [N, H, W, 3]``, ``masks [N, H, W]`` bool (the ITA measure's skin patches).

    Examples
    --------
    >>> lab = np.zeros((1, 2, 2, 3), np.float32); lab[0, 0, 0] = (40, 10, 20)
    >>> skin_lab(lab, np.array([[[True, False], [False, False]]])).tolist()
    [[40.0, 10.0, 20.0]]
    """
    out = np.full((len(lab), 3), np.nan)
    for i in range(len(lab)):
        if masks[i].any():
            out[i] = np.median(lab[i][masks[i]], axis=0)
    return out


__all__ = ["MONK_HEX", "MONK_LAB", "ciede2000", "monk_class", "skin_lab", "hex_to_rgb"]
