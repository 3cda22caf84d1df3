"""Depth at resolutions past what one network pass can hold.

Attention cost grows with the square of the token count, so a 2048-pixel short side in one
pass would need tens of GiB. Instead the picture, already resized to the network size, is cut
into overlapping tiles of a bounded token count. Each tile's relative disparity has its own
unknown scale and shift, so every tile is fitted (least squares) to a low-resolution global pass
of the whole picture before the tiles are feathered together: detail from the tiles, global
consistency from the single pass.
"""
import numpy as np

from .preprocess import PATCH, resize_plane


def tile_side(max_tokens):
    """Largest square tile (a multiple of 14) whose token count stays within ``max_tokens``."""
    return max(PATCH, int(max_tokens ** 0.5) * PATCH)


def tile_starts(length, tile, overlap):
    """Start offsets covering ``length`` with tiles of ``tile`` that overlap by at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    count = -(-(length - tile) // step) + 1
    # Spread the tiles evenly and keep starts on the patch grid, so tiles see whole patches.
    starts = np.linspace(0, length - tile, count)
    return sorted({int(round(s / PATCH) * PATCH) if s < length - tile else length - tile for s in starts})


def _ramp(length, overlap, at_start, at_end):
    w = np.ones(length, np.float32)
    if overlap > 0:
        edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], edge)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], edge[::-1])
    return w


def fit_to(pred, target, blur=1.0):
    """``a * pred + b`` closest to ``target`` in least squares (a kept positive).

    ``target`` is a low-resolution pass upsampled; fitting the sharp tile against it directly
    would shrink ``a`` (the fit would explain away detail the target lacks), so the tile is
    first blurred the same way: down by ``blur`` and back up.
    """
    smooth = pred
    if blur > 1.0:
        h, w = pred.shape
        small = (max(1, round(h / blur)), max(1, round(w / blur)))
        smooth = resize_plane(resize_plane(pred, small), (h, w))
    p = smooth.ravel().astype(np.float64)
    t = target.ravel().astype(np.float64)
    pc, tc = p - p.mean(), t - t.mean()
    var = float(pc @ pc)
    a = float(pc @ tc) / var if var > 1e-12 else 0.0
    if a <= 0.0:  # the tile disagrees with the global pass: match spread instead of correlation
        a = float(np.sqrt((tc @ tc) / var)) if var > 1e-12 else 0.0
    b = t.mean() - a * p.mean()
    return (a * pred + b).astype(np.float32)


def merge_tiles(height, width, tile, overlap, run_tile, guide, guide_scale, cancel=None, progress=None):
    """Run ``run_tile(y, x, h, w) -> disparity`` over the tiles and feather them together.

    ``guide`` is the global pass upsampled to (height, width) from ``guide_scale`` times fewer
    pixels a side; each tile is fitted to it.
    """
    ys = tile_starts(height, tile, overlap)
    xs = tile_starts(width, tile, overlap)
    acc = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        th = min(tile, height - y)
        wy = _ramp(th, overlap, y == 0, y + th >= height)
        for x in xs:
            if cancel is not None and cancel():
                from .errors import CancelledError
                raise CancelledError("Depth generation was cancelled; nothing was written.")
            tw = min(tile, width - x)
            wx = _ramp(tw, overlap, x == 0, x + tw >= width)
            part = fit_to(run_tile(y, x, th, tw), guide[y:y + th, x:x + tw], guide_scale)
            w = wy[:, None] * wx[None, :]
            acc[y:y + th, x:x + tw] += part * w
            weight[y:y + th, x:x + tw] += w
            done += 1
            if progress is not None:
                progress(done / total, f"Tile {done} of {total}")
    return acc / np.maximum(weight, 1e-12)
