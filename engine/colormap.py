"""Colour maps for depth previews, built from a few anchor colours and interpolated linearly.

The anchors follow the look of the well-known perceptual maps (inferno: black through purple
and orange to pale yellow, lightness rising all the way; turbo: a smooth rainbow) closely
enough for a preview; they are not the published tables.
"""

import numpy as np

_ANCHORS = {
    "inferno": [
        (0.000, (0, 0, 4)),
        (0.125, (27, 12, 65)),
        (0.250, (74, 12, 107)),
        (0.375, (120, 28, 109)),
        (0.500, (165, 44, 96)),
        (0.625, (207, 68, 70)),
        (0.750, (237, 105, 37)),
        (0.875, (251, 155, 6)),
        (0.940, (247, 209, 61)),
        (1.000, (252, 255, 164)),
    ],
    "turbo": [
        (0.0, (48, 18, 59)),
        (0.1, (70, 98, 215)),
        (0.2, (54, 170, 249)),
        (0.3, (26, 228, 182)),
        (0.4, (114, 254, 94)),
        (0.5, (200, 239, 52)),
        (0.6, (250, 186, 57)),
        (0.7, (246, 107, 25)),
        (0.8, (202, 42, 4)),
        (0.9, (160, 18, 2)),
        (1.0, (122, 4, 3)),
    ],
    "grey": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
}
NAMES = tuple(_ANCHORS)
_LUT_SIZE = 1024
_luts = {}


def lut(name: str) -> np.ndarray:
    """The map as a (1024, 3) uint8 table, from value 0 to value 1."""
    if name not in _ANCHORS:
        raise ValueError(f"Unknown colour map {name!r}: use one of {', '.join(NAMES)}.")
    if name not in _luts:
        stops = np.array([t for t, _ in _ANCHORS[name]])
        colours = np.array([c for _, c in _ANCHORS[name]], np.float64)
        x = np.linspace(0.0, 1.0, _LUT_SIZE)
        table = np.stack([np.interp(x, stops, colours[:, c]) for c in range(3)], axis=1)
        _luts[name] = np.round(table).astype(np.uint8)
    return _luts[name]


def apply(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """Colour values in 0..1 (clipped; NaN as 0): HxW -> HxWx3 uint8."""
    table = lut(name)
    v = np.nan_to_num(np.asarray(values, np.float32), nan=0.0)
    index = np.rint(np.clip(v, 0.0, 1.0) * (_LUT_SIZE - 1)).astype(np.intp)
    return table[index]
