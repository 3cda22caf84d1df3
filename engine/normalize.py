"""Turning the network's relative inverse depth (disparity: larger = nearer) into a depth map.

Modes, as named by the depth tools users know:
- standard: min-max to 0..1, near = bright.
- v2-style: robust 1st-99th percentile stretch, clamped, then a square-root contrast boost
  that lifts the far range (the look of Depth Anything V2 previews).
- raw: the network's own values, untouched (for point clouds and custom grading).
``invert`` flips the convention to near = dark (for raw: max - value).
"""

import numpy as np

from .errors import InvalidSettingsError

_EPS = 1e-8


def normalize(disparity, mode="standard", invert=False):
    """Return (depth float32 HxW, near_is_bright)."""
    depth, near_is_bright, _ = normalize_with_range(disparity, mode, invert)
    return depth, near_is_bright


def normalize_with_range(disparity, mode="standard", invert=False):
    """Return (depth float32 HxW, near_is_bright, (lo, hi)): the input values that became 0 and 1
    (for raw: the input's min and max), which engine.units needs to read values back."""
    d = np.nan_to_num(disparity.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "raw":
        out = (d.max() - d) if invert else d.copy()
        return out.astype(np.float32, copy=False), not invert, (float(d.min()), float(d.max()))
    if mode == "standard":
        lo, hi = float(d.min()), float(d.max())
        out = (d - lo) / max(hi - lo, _EPS)
    elif mode == "v2-style":
        if d.size > 1000:
            lo, hi = (float(v) for v in np.percentile(d, (1.0, 99.0)))
        else:
            lo, hi = float(d.min()), float(d.max())
        out = np.sqrt(np.clip((d - lo) / max(hi - lo, _EPS), 0.0, 1.0))
    else:
        raise InvalidSettingsError(f"Unknown normalization {mode!r}: use standard, v2-style or raw.")
    if invert:
        out = 1.0 - out
    return out.astype(np.float32, copy=False), not invert, (lo, max(hi, lo + _EPS))
