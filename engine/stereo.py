"""Stereo pairs from one picture and its depth, as a stereo camera rig would make them.

Disparity ``d`` (pixels, per pixel of the input picture) is how much further left a point lies in
the right eye's view than in the left eye's: ``x_right = x_left - d``. Positive = in front of the
screen, zero = on it, negative = behind it. Two ways to get it:

- A rig in scene units (depth with distances: Scene Z, or a map aligned to metric depth): a
  camera of focal length ``f_px`` (pixels), interaxial ``b`` and convergence distance ``C`` sees a
  point at planar distance ``Z`` with ``d = f_px * b * (1/Z - 1/C)``. That is Blender's
  stereoscopy in its Off-Axis mode (shifted sensors; Parallel is ``C`` = infinity), measured on
  Blender's own stereo renders, whichever camera is the pivot (tests/blender/test_stereo_rig.py).
- A relative map (near = bright, 0..1): ``d = divergence / 100 * width * depth``, so the
  divergence is exactly the largest shift between the two eyes, in percent of the width.

The input picture is one eye (left or right: the other is synthesised) or sits between them
(centred: each eye gets half the shift). A synthesised view is built by backward sampling: each
of its pixels takes the input at a sub-pixel position found by warping the input's pixel grid row
by row (neighbouring pixels on one surface span the pixels between their targets), with a depth
test so that near surfaces cover far ones. What the input never saw (disocclusions behind near
objects, the border strip beyond the input's edge) is filled from the background side by
mirroring the background's own texture across the gap's edge, not by smearing one pixel along the
row; the share of filled pixels is reported.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidSettingsError

LAYOUTS = ("side-by-side", "top-bottom", "anaglyph")
EYES = ("left", "right", "centre")
MAX_DIVERGENCE = 30.0  # percent of the width; real rigs rarely exceed a few percent
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")
_GAP = 1.0  # neighbours whose disparity differs by more than this many pixels are a depth edge
_GUESS = 1e9  # ranks what lies beyond the picture's edges behind everything the picture saw


@dataclass(frozen=True)
class StereoPair:
    left: np.ndarray
    right: np.ndarray
    filled: float  # share of the synthesised views' pixels that no input pixel reached (0..1)
    largest_shift: float  # the largest shift between the eyes, percent of the width


def focal_px(lens, sensor_width, sensor_height, width, height, sensor_fit="AUTO"):
    """A camera's focal length in pixels of a ``width`` x ``height`` picture (square pixels), the
    way Blender fits the sensor: AUTO puts the sensor width along the longer side of the picture."""
    if sensor_fit not in SENSOR_FITS:
        raise InvalidSettingsError(f"Unknown sensor fit {sensor_fit!r}: use one of {', '.join(SENSOR_FITS)}.")
    if not (lens > 0 and sensor_width > 0 and sensor_height > 0 and width > 0 and height > 0):
        raise InvalidSettingsError("Focal length, sensor size and picture size must all be positive.")
    if sensor_fit == "VERTICAL":
        return lens / sensor_height * height
    if sensor_fit == "HORIZONTAL" or width >= height:
        return lens / sensor_width * width
    return lens / sensor_width * height


def rig_disparity(distance, focal, interaxial, convergence=math.inf):
    """Disparity in pixels of a stereo rig for planar distances (HxW, scene units). Pixels with no
    finite positive distance (background) are infinitely far. ``convergence`` = inf: parallel rig."""
    if not (np.isfinite(focal) and focal > 0):
        raise InvalidSettingsError(f"Focal length {focal} px must be positive.")
    if not (np.isfinite(interaxial) and interaxial > 0):
        raise InvalidSettingsError(f"Interaxial distance {interaxial} must be positive (scene units).")
    if not convergence > 0:
        raise InvalidSettingsError(f"Convergence distance {convergence} must be positive (scene units).")
    z = np.asarray(distance, np.float64)
    inverse = np.zeros(z.shape)
    np.divide(1.0, z, out=inverse, where=np.isfinite(z) & (z > 0))
    return (focal * interaxial * (inverse - 1.0 / convergence)).astype(np.float32)


def relative_disparity(depth, divergence, width=None):
    """Disparity in pixels for a relative map (near = bright, 0..1): ``divergence`` percent of the
    width at depth 1, nothing at depth 0 (which sits on the screen)."""
    if not 0 <= divergence <= MAX_DIVERGENCE:
        raise InvalidSettingsError(
            f"Divergence {divergence}% is out of range: use 0 to {MAX_DIVERGENCE:g} % of the width."
        )
    d = np.clip(np.nan_to_num(np.asarray(depth, np.float32)), 0.0, 1.0)
    width = d.shape[1] if width is None else width
    return (divergence / 100.0 * width * d).astype(np.float32)


def relative_nearness(x, quantity="relative"):
    """A map's values as 0..1 nearness linear in inverse depth (1 = the nearest point, 0 = the
    farthest), from what they decode to (engine.units): a network's relative inverse depth, 1/Z, or
    Z itself (``quantity`` 'distance'). That is the Standard normalisation, the only one whose
    shifts a real rig makes: one converged on the farthest point, its interaxial set by divergence."""
    x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if quantity == "distance":
        x = np.divide(1.0, x, out=np.zeros_like(x), where=x > 0)
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / max(hi - lo, 1e-12)).astype(np.float32)


def relative_warning(units):
    """Why a relative map's pair cannot be a real rig's (None when it can). ``units``: the map's
    units metadata (engine.units' dict), or None when it records none."""
    if not units:
        return (
            "The depth map records no units: its values are used as they are (near = bright, 0 to 1). They "
            "give a real camera rig's shifts only if they are inverse depth in the Standard normalisation."
        )
    if units.get("clipped"):
        return (
            "This map's normalisation (V2-Style) clipped its nearest and farthest 1 %: the shifts there are "
            "flattened, as no camera rig makes them. Use the Standard normalisation for a rig-true pair."
        )
    return None


def stereo_pair(picture, disparity, eye="left", fill=True):
    """The (left, right) views of ``picture`` (HxWxC) for a disparity map (HxW pixels, see the
    module's notes). ``eye``: which eye the picture is (left, right) or centre (between them)."""
    picture = np.asarray(picture)
    disparity = np.nan_to_num(np.asarray(disparity, np.float64))
    if picture.shape[:2] != disparity.shape:
        raise InvalidSettingsError(f"Picture {picture.shape[:2]} and depth {disparity.shape} differ in size.")
    if eye not in EYES:
        raise InvalidSettingsError(f"Unknown eye {eye!r}: use one of {', '.join(EYES)}.")
    factors = {"left": (None, -1.0), "right": (1.0, None), "centre": (0.5, -0.5)}[eye]
    views, holes = [], []
    for factor in factors:
        if factor is None:
            views.append(picture)
            continue
        view, hole = _view(picture, disparity, factor, fill)
        views.append(view)
        holes.append(hole)
    largest = float(np.abs(disparity).max()) if disparity.size else 0.0
    return StereoPair(views[0], views[1], float(np.mean(holes)), 100.0 * largest / picture.shape[1])


def _view(picture, disparity, factor, fill):
    """One synthesised view: each pixel shows the input where the input's pixel moved to it by
    ``factor * disparity``. Returns (view, share of its pixels the input never saw).

    To fill, the input is first extended beyond its left and right edges by its mirror image, so
    the border strip the input never saw is filled like the rest of the view, depth test included
    (a near object at the edge does not spill over the far background beside it); what comes from
    the mirror image only goes where nothing the input saw lands."""
    w = disparity.shape[1]
    pad = min(math.ceil(abs(factor) * float(np.abs(disparity).max())) + 1, w) if fill else 0
    if pad:
        disparity = np.pad(disparity, ((0, 0), (pad, pad)), mode="symmetric")
        picture = np.pad(picture, ((0, 0), (pad, pad), (0, 0)), mode="symmetric")
    source, nearness = _splat(disparity, factor, halo=fill, pad=pad)
    source, nearness = source[:, pad : pad + w], nearness[:, pad : pad + w]
    hole = np.isnan(source)
    with np.errstate(invalid="ignore"):
        unseen = hole | (source < pad - 0.5) | (source > pad + w - 0.5)
    if fill and hole.any():
        source = _fill(source, nearness, hole)
    view = _sample(picture, source)
    if not fill:
        view[hole] = 0
    return view, float(unseen.mean())


def _splat(disparity, factor, halo=False, pad=0):
    """Warp the input's pixel grid row by row. Returns, per output pixel, the input column it
    shows (float, NaN where nothing lands) and its disparity (the depth test: larger = nearer).
    ``halo``: leave out the far side's pixels along depth edges: in a rendered or photographed
    picture they are partly the near object's colour, which would trail the background as a halo.
    ``pad``: columns on each side that are not the picture but its mirror image: they only go
    where no pixel of the picture lands (a guess never hides what the picture saw)."""
    h, w = disparity.shape
    d = disparity
    x = np.arange(w, dtype=np.float64)
    target = x + factor * d
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    keep = np.ones((h, w), bool)
    if halo:
        keep[:, 1:] &= d[:, :-1] <= d[:, 1:] + _GAP
        keep[:, :-1] &= d[:, 1:] <= d[:, :-1] + _GAP
        keep[1:] &= d[:-1] <= d[1:] + _GAP
        keep[:-1] &= d[1:] <= d[:-1] + _GAP
    t0, t1, d0 = target[:, :-1], target[:, 1:], d[:, :-1]
    step = d[:, 1:] - d0
    # t1 <= t0: the surface turns away from this eye
    surface = (np.abs(step) <= _GAP) & (t1 > t0) & keep[:, :-1] & keep[:, 1:]
    # Each input pixel alone lands on its nearest output pixel (keeps thin, isolated surfaces),
    # never reaching across a depth edge for its sub-pixel position.
    near = np.rint(target)
    reach_r = np.zeros((h, w), bool)
    reach_l = np.zeros((h, w), bool)
    reach_r[:, :-1] = surface
    reach_l[:, 1:] = surface
    src = np.clip(near - factor * d, np.where(reach_l, x - 1, x), np.where(reach_r, x + 1, x))
    parts = [(rows[keep], near[keep], src[keep], d[keep])]
    # Neighbours on one surface span every output pixel centre between their targets.
    first = np.ceil(t0)
    for k in range(math.ceil(1 + _GAP) + 1):
        j = first + k
        ok = surface & (j < t1)
        a = (j[ok] - t0[ok]) / (t1[ok] - t0[ok])
        parts.append((rows[:, :-1][ok], j[ok], x[:-1][np.nonzero(ok)[1]] + a, d0[ok] + a * step[ok]))
    r, j, src, prio = (np.concatenate([np.ravel(p[i]) for p in parts]) for i in range(4))
    inside = (j >= 0) & (j < w)
    flat = r[inside].astype(np.int64) * w + j[inside].astype(np.int64)
    src, prio = src[inside], prio[inside]
    guess = (src < pad - 0.5) | (src > w - pad - 0.5)
    rank = prio - np.where(guess, _GUESS, 0.0)
    nearness = np.full(h * w, -np.inf)
    np.maximum.at(nearness, flat, rank)  # the depth test: the nearest candidate wins
    win = rank >= nearness[flat]
    source = np.full(h * w, np.nan)
    source[flat[win]] = src[win]
    nearness[flat[win & guess]] += _GUESS
    return source.reshape(h, w), nearness.reshape(h, w)


def _fill(source, nearness, hole):
    """Fill holes from the background side (the farther of the two edges of each gap in a row, or
    the only one at the picture's border) by mirroring the background across the gap's edge, back
    and forth within the background's own run of pixels, so the filling has its texture."""
    h, w = source.shape
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    left = np.maximum.accumulate(np.where(hole, -1, cols), axis=1)
    right = np.flip(np.minimum.accumulate(np.flip(np.where(hole, w, cols), axis=1), axis=1), axis=1)
    if (left[:, -1] < 0).any():  # a row with nothing at all: nothing to fill it from
        empty = left[:, -1] < 0
        source[empty] = np.arange(w)[None, :]
        hole = hole & ~empty[:, None]
    near_l = np.where(left >= 0, nearness[rows, np.clip(left, 0, w - 1)], np.inf)
    near_r = np.where(right < w, nearness[rows, np.clip(right, 0, w - 1)], np.inf)
    from_right = near_r < near_l  # the farther edge is the background
    edge = np.where(from_right, right, left)
    # How far the background's run goes from the edge, away from the gap (same surface: no depth edge).
    run_r, run_l = _runs(nearness, hole)
    run = np.where(from_right, run_r[rows, np.clip(edge, 0, w - 1)], run_l[rows, np.clip(edge, 0, w - 1)])
    run = np.where(run > 2, run - 1, run)  # the run's last pixel, at a depth edge, is often part of the other surface
    k = np.abs(cols - edge)  # distance from the edge into the gap
    period = np.maximum(2 * run, 1)
    o = k % period
    o = np.where(o >= run, period - 1 - o, o)  # back and forth within the run
    mirror = np.where(from_right, edge + o, edge - o)
    out = source.copy()
    out[hole] = source[rows[hole], np.clip(mirror[hole], 0, w - 1)]
    return out


def _runs(nearness, hole):
    """For each pixel, how many pixels (itself included) its surface runs to the right and to the
    left without a hole or a depth edge."""
    h, w = nearness.shape
    cont = ~hole[:, 1:] & ~hole[:, :-1] & (np.abs(np.diff(np.where(hole, 0, nearness), axis=1)) <= _GAP)
    brk = np.ones((h, w + 1), bool)  # break before column c (c = 0..w)
    brk[:, 1:w] = ~cont
    cols = np.arange(w + 1)[None, :].repeat(h, 0)
    start = np.maximum.accumulate(np.where(brk, cols, 0), axis=1)[:, :w]  # first column of the run
    end = np.flip(np.minimum.accumulate(np.flip(np.where(brk, cols, w), axis=1), axis=1), axis=1)[:, 1:]
    c = np.arange(w)[None, :]
    return end - c, c - start + 1


def _sample(picture, source):
    """The picture at fractional columns ``source`` of each row (linear between neighbours)."""
    h, w = source.shape[0], picture.shape[1]
    x = np.clip(np.nan_to_num(source), 0, w - 1)
    x0 = np.floor(x).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    a = (x - x0)[..., None]
    rows = np.arange(h)[:, None]
    out = picture[rows, x0] * (1 - a) + picture[rows, x1] * a
    return out.astype(picture.dtype, copy=False)


def stereo_views(picture, depth, divergence=2.5, fill=True, eye="centre"):
    """(left, right) views for a relative map (near = bright, 0..1) and a divergence in percent."""
    pair = stereo_pair(picture, relative_disparity(depth, divergence, np.shape(depth)[1]), eye, fill)
    return pair.left, pair.right


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
