"""Stereo pairs from one picture and its depth map (near = bright, 0..1).

Each eye sees the picture shifted sideways in proportion to nearness: ``divergence`` is the
largest shift between the two views, in percent of the picture's width, split evenly between
the eyes. Pixels are forward-warped with a depth test, so near pixels cover far ones, and the
gaps that open behind near objects (disocclusions) are filled from the farther neighbour on the
same row, which is what the hidden background most likely looks like.
"""

import numpy as np

from .errors import InvalidSettingsError

LAYOUTS = ("side-by-side", "top-bottom", "anaglyph")


def _warp(picture, depth, shift):
    """Forward-warp ``picture`` by ``shift`` (pixels per unit nearness); returns (view, holes)."""
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    tx = np.rint(xs + shift * depth).astype(np.int64)
    inside = (tx >= 0) & (tx < w)
    ys, xs, tx, d = ys[inside], xs[inside], tx[inside], depth[inside]
    zbuf = np.full((h, w), -np.inf, np.float32)
    np.maximum.at(zbuf, (ys, tx), d)
    win = d >= zbuf[ys, tx]
    view = np.zeros_like(picture)
    view[ys[win], tx[win]] = picture[ys[win], xs[win]]
    filled_depth = np.where(np.isfinite(zbuf), zbuf, np.nan)
    return view, filled_depth


def _fill_holes(view, depth):
    """Fill pixels with no source (NaN depth) from the farther of their nearest row neighbours."""
    h, w = depth.shape
    valid = ~np.isnan(depth)
    if valid.all():
        return view
    cols = np.arange(w)[None, :].repeat(h, 0)
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.flip(np.minimum.accumulate(np.flip(np.where(valid, cols, w), axis=1), axis=1), axis=1)
    rows = np.arange(h)[:, None].repeat(w, 1)
    has_l, has_r = left >= 0, right < w
    dl = np.where(has_l, depth[rows, np.clip(left, 0, w - 1)], np.inf)
    dr = np.where(has_r, depth[rows, np.clip(right, 0, w - 1)], np.inf)
    use_left = has_l & (~has_r | (dl <= dr))
    src = np.where(use_left, left, right)
    src = np.clip(src, 0, w - 1)
    out = view.copy()
    holes = ~valid & (has_l | has_r)
    out[holes] = view[rows[holes], src[holes]]
    return out


def stereo_views(picture, depth, divergence=2.5, fill=True):
    """(left, right) views of ``picture`` (HxWxC) for a depth map (HxW, near = bright)."""
    if picture.shape[:2] != depth.shape:
        raise InvalidSettingsError(f"Picture {picture.shape[:2]} and depth {depth.shape} differ in size.")
    if not 0 <= divergence <= 20:
        raise InvalidSettingsError(f"Divergence {divergence}% is out of range: use 0 to 20 % of the width.")
    d = np.clip(np.nan_to_num(depth.astype(np.float32)), 0.0, 1.0)
    half = divergence / 100.0 * depth.shape[1] / 2.0
    views = []
    for shift in (half, -half):  # the left eye sees near things further right, the right eye further left
        view, zbuf = _warp(picture, d, shift)
        views.append(_fill_holes(view, zbuf) if fill else view)
    return views[0], views[1]


def compose(left, right, layout="side-by-side"):
    """One image from the two views: side by side, top-bottom or a red-cyan anaglyph."""
    if layout == "side-by-side":
        return np.concatenate([left, right], axis=1)
    if layout == "top-bottom":
        return np.concatenate([left, right], axis=0)
    if layout == "anaglyph":
        out = right.copy()
        out[..., 0] = left[..., 0]  # red from the left eye, green and blue from the right
        return out
    raise InvalidSettingsError(f"Unknown stereo layout {layout!r}: use one of {', '.join(LAYOUTS)}.")
