"""Depth at resolutions past what one network pass can hold: the whole picture's shape from one
pass over the whole picture, the fine detail from tiles.

Attention cost grows with the square of the token count, so a 2048-pixel short side in one pass
would need tens of GiB. Instead:

1. a *guide* pass sees the whole picture at the largest resolution one pass can hold;
2. the picture, resized to the network size, is cut into overlapping tiles of a bounded token
   count. A network answers each tile with its own unknown scale and shift, and, seeing less
   context, with a smooth error of its own across the tile. So each tile is fitted to the guide
   in two parts: its scale from the band of detail both can see (the guide's detail minus a
   coarse low-pass: free of that smooth error), then a low-order surface (not one shift) that
   bends it onto the guide;
3. the fitted tiles are feathered together (raised-cosine ramps, no kinks);
4. a frequency split replaces what remains below the guide's resolution by the guide:
   ``result = mosaic + up(blur(guide - down(mosaic)))``. The low frequencies, and with them the
   whole picture's shape, come from the guide; the tiles contribute only detail, so a tile's
   residual error cannot bend the picture nor leave a seam.
"""

import numpy as np

from .errors import CancelledError
from .preprocess import PATCH, network_size, resize_plane


def tile_side(max_tokens):
    """Largest square tile (a multiple of 14) whose token count stays within ``max_tokens``."""
    return max(PATCH, int(max_tokens**0.5) * PATCH)


def tokens(net_hw):
    return (net_hw[0] // PATCH) * (net_hw[1] // PATCH)


def one_pass_resolution(height, width, resolution, max_tokens):
    """The largest resolution up to ``resolution`` whose network size fits one pass of ``max_tokens``."""
    res = resolution
    while res > PATCH and tokens(network_size(height, width, res)) > max_tokens:
        res -= 1
    return res


def tile_starts(length, tile, overlap):
    """Start offsets covering ``length`` with tiles of ``tile`` that overlap by at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    count = -(-(length - tile) // step) + 1
    # Spread the tiles evenly and keep starts on the patch grid, so tiles see whole patches.
    starts = np.linspace(0, length - tile, count)
    return sorted({int(round(s / PATCH) * PATCH) if s < length - tile else length - tile for s in starts})


def tile_overlap(tile):
    """Overlap between neighbouring tiles: a quarter tile, on the patch grid."""
    return max(PATCH, (tile // 4) // PATCH * PATCH)


def _ramp(length, overlap, at_start, at_end):
    """Feathering weights: raised cosine over the overlap, so blends have no kinks."""
    w = np.ones(length, np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        edge = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], edge)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], edge[::-1])
    return w


def _down_up(plane, small):
    """Low-pass: down to ``small`` (bicubic, antialiased as the picture was for the guide) and back."""
    return resize_plane(resize_plane(plane, small, bicubic=True), plane.shape)


def _blur(plane, sigma):
    """Separable Gaussian blur with edge-replicating borders."""
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out = plane.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        out = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), axis, padded)
    return out.astype(np.float32)


# How coarse the low-pass is whose removal leaves the band a tile's scale is judged on, in tile
# sides: fine enough that a smooth error across the tile is gone from the band.
_BAND_CELLS = 16
# The guide's share is blurred by this many guide pixels (sigma): tile errors are smooth at
# tile scale, so this loses nothing of the correction and keeps every edge the tiles' own.
_CORRECTION_SIGMA = 1.5


class _Fit:
    """One tile's output and what its fit to the guide needs, worked out at the guide's scale
    (cheap: a tile's pixels are resampled four times, everything else is on the small grid)."""

    def __init__(self, y, x, pred, guide_part, guide_ratio):
        self.y, self.x, self.pred = y, x, pred
        th, tw = pred.shape
        small = (max(2, round(th * guide_ratio[0])), max(2, round(tw * guide_ratio[1])))
        # What the guide can see of this tile, resampled exactly as the guide's part was (down to
        # the guide's scale, up to the tile's, down again), so that the two compare like for like.
        self.small = resize_plane(_down_up(pred, small), small, bicubic=True)
        self.guide = resize_plane(guide_part, small, bicubic=True)
        coarse = (max(1, small[0] * _BAND_CELLS // max(small)), max(1, small[1] * _BAND_CELLS // max(small)))
        band_t = (self.small - _down_up(self.small, coarse)).astype(np.float64)
        band_g = (self.guide - _down_up(self.guide, coarse)).astype(np.float64)
        self.num, self.den = float(np.vdot(band_t, band_g)), float(np.vdot(band_t, band_t))
        self.spread = float(np.std(self.guide) / max(float(np.std(self.small)), 1e-12))

    def fitted(self, scale):
        """``scale * pred`` plus the quadratic surface that best bends it onto the guide."""

        def basis(v, u):
            return [np.ones_like(u * v), u, v, u * v, u * u, v * v]

        sh, sw = self.small.shape
        v, u = np.mgrid[0:sh, 0:sw].astype(np.float64)
        cols = basis((v + 0.5) / sh - 0.5, (u + 0.5) / sw - 0.5)
        design = np.stack([c.ravel() for c in cols], axis=1)
        residual = (self.guide - scale * self.small).astype(np.float64).ravel()
        coef, *_ = np.linalg.lstsq(design, residual, rcond=None)
        th, tw = self.pred.shape
        v, u = np.ogrid[0:th, 0:tw]
        surface = sum(c * term for c, term in zip(coef, basis((v + 0.5) / th - 0.5, (u + 0.5) / tw - 0.5)))
        return (scale * self.pred + surface).astype(np.float32)


def _scales(fits):
    """Each tile's scale from its band. Tiles with almost no detail (a flat wall, a pure gradient)
    cannot say, and need not, as they bring no detail: they fall back on matching spreads."""
    num, den = np.array([f.num for f in fits]), np.array([f.den for f in fits])
    spread = np.array([f.spread for f in fits])
    weight = 1e-3 * float(den.max()) + 1e-12
    scales = (num + weight * spread) / (den + weight)
    return np.clip(scales, spread / 4, spread * 4)


def merge_detail(height, width, tile, overlap, run_tile, guide, cancel=None, progress=None):
    """Run ``run_tile(y, x, h, w) -> disparity`` over the tiles of a (height, width) network-size
    picture and merge them with ``guide``, the whole picture's pass at its own (smaller) size:
    low frequencies from the guide, detail from the tiles (see the module's notes)."""
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    guide_up = resize_plane(guide, (height, width))
    ratio = (guide.shape[0] / height, guide.shape[1] / width)
    fits, total = [], len(ys) * len(xs)
    for y in ys:
        th = min(tile, height - y)
        for x in xs:
            if cancel is not None and cancel():
                raise CancelledError("Depth generation was cancelled; nothing was written.")
            tw = min(tile, width - x)
            fits.append(_Fit(y, x, run_tile(y, x, th, tw), guide_up[y : y + th, x : x + tw], ratio))
            if progress is not None:
                progress(len(fits) / total, f"Tile {len(fits)} of {total}")
    acc = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    for fit, scale in zip(fits, _scales(fits)):
        th, tw = fit.pred.shape
        y, x = fit.y, fit.x
        part = fit.fitted(scale)
        w = _ramp(th, overlap, y == 0, y + th >= height)[:, None] * _ramp(tw, overlap, x == 0, x + tw >= width)[None]
        acc[y : y + th, x : x + tw] += part * w
        weight[y : y + th, x : x + tw] += w
    del fits, guide_up
    mosaic = acc / np.maximum(weight, 1e-12)
    del acc, weight
    correction = _blur(guide - resize_plane(mosaic, guide.shape, bicubic=True), _CORRECTION_SIGMA)
    mosaic += resize_plane(correction, (height, width))
    return mosaic, len(ys) * len(xs)
