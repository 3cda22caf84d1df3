"""Turning the network's relative inverse depth (disparity: larger = nearer) into a depth map.

Modes, as named by the depth tools users know:
- standard: min-max to 0..1, near = bright.
- v2-style: robust 1st-99th percentile stretch, clamped, then a square-root contrast boost
  that lifts the far range (the look of Depth Anything V2 previews).
- raw: the network's own values, untouched (for point clouds and custom grading).
``invert`` flips the convention to near = dark (for raw: max - value).

A sequence maps every frame with one range (``value_range`` of its first frame, then
``normalize_in_range``), so that a frame's own extremes do not make the whole frame flicker.
"""

import numpy as np

from .errors import InvalidSettingsError

_EPS = 1e-8


def _clean(disparity):
    return np.nan_to_num(disparity.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)


def value_range(disparity, mode="standard"):
    """The (lo, hi) of disparity that ``mode`` maps to 0..1 (raw: its min and max)."""
    d = _clean(disparity)
    if mode == "v2-style" and d.size > 1000:
        lo, hi = (float(v) for v in np.percentile(d, (1.0, 99.0)))
    elif mode in ("standard", "v2-style", "raw"):
        lo, hi = float(d.min()), float(d.max())
    else:
        raise InvalidSettingsError(f"Unknown normalization {mode!r}: use standard, v2-style or raw.")
    return lo, hi


def normalize_in_range(disparity, mode, invert, lo, hi, *, clip=True):
    """Map disparity with a given range: (depth float32 HxW, near_is_bright)."""
    d = _clean(disparity)
    if mode == "raw":
        out = (hi - d) if invert else d.copy()
        return out.astype(np.float32, copy=False), not invert
    if mode not in ("standard", "v2-style"):
        raise InvalidSettingsError(f"Unknown normalization {mode!r}: use standard, v2-style or raw.")
    out = (d - lo) / max(hi - lo, _EPS)
    if clip or mode == "v2-style":
        out = np.clip(out, 0.0, 1.0)
    if mode == "v2-style":
        out = np.sqrt(out)
    if invert:
        out = 1.0 - out
    return out.astype(np.float32, copy=False), not invert


def normalize(disparity, mode="standard", invert=False):
    """Return (depth float32 HxW, near_is_bright), scaled by the picture's own range."""
    depth, near_is_bright, _ = normalize_with_range(disparity, mode, invert)
    return depth, near_is_bright


def normalize_with_range(disparity, mode="standard", invert=False):
    """Return (depth float32 HxW, near_is_bright, (lo, hi)): the input values that became 0 and 1
    (for raw: the input's min and max), which engine.units needs to read values back."""
    lo, hi = value_range(disparity, mode)
    depth, near_is_bright = normalize_in_range(disparity, mode, invert, lo, hi, clip=False)
    return depth, near_is_bright, (lo, hi if mode == "raw" else max(hi, lo + _EPS))
