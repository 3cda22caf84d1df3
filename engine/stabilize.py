"""Temporal stabilisation of relative depth, and a flicker figure to judge it by.

A network such as Depth Anything V2 gives each frame its inverse depth up to its own scale and
shift; frame to frame that shows as flicker. ``Stabilizer`` aligns each frame, in inverse depth,
to the last ``window`` aligned frames before it: against each of them one scale and shift are
fitted robustly (a quantile match to start, then a line through the pixels whose residual stays
within a few robust deviations, so moving objects and newly seen areas do not pull the fit), and
the fits are averaged. With ``smoothing`` > 0, pixels that agree with every frame of the window (the
static ones) are also blended towards the window's per-pixel median, which calms per-pixel noise.

The fits run on small copies (``size`` pixels on the long side): a scale and a shift need few
pixels, and the work per frame stays small next to the network pass.

``FlickerMeter`` reports the mean frame-to-frame change of static pixels in percent of the 0..1
depth range; static pixels are those whose depth in the stabilised maps fits the previous frame.
"""

from collections import deque

import numpy as np

from .preprocess import resize_plane

DEFAULT_WINDOW = 5
DEFAULT_SIZE = 192
_K = 3.0  # residuals beyond this many robust deviations are not static
_MAD = 1.4826  # a normal distribution's standard deviation per median absolute deviation


def small(plane, size=DEFAULT_SIZE):
    """A copy whose long side is at most ``size`` pixels (area-averaged by striding then bilinear)."""
    h, w = plane.shape
    scale = size / max(h, w)
    if scale >= 1:
        return plane.astype(np.float32, copy=True)
    step = max(1, int(1 / scale) // 2)
    plane = plane[::step, ::step] if step > 1 else plane
    return resize_plane(np.ascontiguousarray(plane, np.float32), (max(1, round(h * scale)), max(1, round(w * scale))))


def _line(x, y):
    """Scale and shift through the means with the ratio of spreads (reduced major axis). Both sides
    carry noise; a least-squares slope would shrink by noise/spread each frame and, chained from
    frame to frame, drift. This one is symmetric, so the drift stays far smaller."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    sx, sy = np.sqrt((dx * dx).mean()), np.sqrt((dy * dy).mean())
    if sx == 0:
        return 1.0, float(my - mx)
    s = sy / sx * (1.0 if (dx * dy).sum() >= 0 else -1.0)
    return float(s), float(my - s * mx)


def quantile_fit(x, y, low=5.0, high=95.0):
    """Scale and shift that map the ``low``..``high`` percentile range of x onto that of y."""
    xl, xh = np.percentile(x, (low, high))
    yl, yh = np.percentile(y, (low, high))
    s = (yh - yl) / (xh - xl) if xh > xl else 1.0
    return float(s), float(yl - s * xl)


def fit_scale_shift(x, y, *, iterations=5, k=_K):
    """Robust (scale, shift, inliers) with scale * x + shift ~ y over finite pixels.

    Starts from a quantile match (blind to which pixels correspond) and refines with a symmetric line fit
    on the pixels within ``k`` robust deviations of the current fit, ``iterations`` times.
    """
    x = np.asarray(x, np.float32).ravel()
    y = np.asarray(y, np.float32).ravel()
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.sum() < 8:
        return 1.0, 0.0, finite
    xs, ys = x[finite], y[finite]
    s, t = quantile_fit(xs, ys)
    inliers = np.ones(xs.shape, bool)
    for _ in range(iterations):
        r = np.abs(s * xs + t - ys)
        spread = _MAD * float(np.median(r))
        floor = 1e-6 * max(float(ys.max() - ys.min()), 1e-12)
        inliers = r <= k * max(spread, floor)
        if inliers.sum() < 8:
            break
        s, t = _line(xs[inliers], ys[inliers])
    mask = np.zeros(x.shape, bool)
    mask[np.flatnonzero(finite)[inliers]] = True
    return s, t, mask


class Stabilizer:
    """Aligns frames, in order, to the frames before them. ``history`` seeds it with the small
    aligned maps of frames already done (resume, or another process's earlier frames)."""

    def __init__(self, *, window=DEFAULT_WINDOW, smoothing=0.0, size=DEFAULT_SIZE, history=()):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing {smoothing!r} must be at least 0 and below 1.")
        self.window, self.smoothing, self.size = max(1, int(window)), float(smoothing), size
        self.history = deque((np.asarray(h, np.float32) for h in history), maxlen=self.window)

    def reference(self, shape):
        """The per-pixel median of the window at ``shape``, or None before the first frame."""
        maps = [h if h.shape == shape else resize_plane(h, shape) for h in self.history]
        return np.median(np.stack(maps), axis=0) if maps else None

    def align(self, disparity, *, anchor=None):
        """(aligned disparity, small aligned copy, scale, shift).

        With no frame before it, a frame keeps its own scale, or with ``anchor`` = (lo, hi) it is
        mapped so its 5th..95th percentiles match those of the anchoring frame (a sequence whose
        first frames were made by another process starts on the same scale, if not pixel for pixel).
        """
        disparity = np.asarray(disparity, np.float32)
        low = small(disparity, self.size)
        inliers = None
        if self.history:
            s, t, inliers = self._fit(low)
        elif anchor is not None:
            xl, xh = np.percentile(low, (5.0, 95.0))
            s = (anchor[1] - anchor[0]) / (xh - xl) if xh > xl else 1.0
            s, t = float(s), float(anchor[0] - s * xl)
        else:
            s, t = 1.0, 0.0
        aligned = disparity * np.float32(s) + np.float32(t)
        low = low * np.float32(s) + np.float32(t)
        if self.smoothing > 0 and inliers is not None:
            ref = self.reference(low.shape)
            blend = np.float32(self.smoothing) * inliers.reshape(low.shape).astype(np.float32)
            aligned = aligned + resize_plane((ref - low) * blend, aligned.shape)
        self.history.append(low)  # unsmoothed: every frame in the window carries the same noise
        return aligned, low, s, t

    def _fit(self, low):
        """One fit against each frame of the window, averaged. Fitting each pair keeps the noise on
        both sides alike, which keeps the symmetric fit unbiased; a pixel-wise median reference
        would be less noisy than the frame and pull the scale down a little every frame."""
        fits = []
        for h in self.history:
            h = h if h.shape == low.shape else resize_plane(h, low.shape)
            fits.append(fit_scale_shift(low, h))
        best = max(f[2].mean() for f in fits)
        good = [f for f in fits if f[2].mean() >= 0.5 * best]  # a frame too unlike this one says little
        static = np.logical_and.reduce([f[2] for f in fits])  # agrees with every frame of the window
        return float(np.mean([f[0] for f in good])), float(np.mean([f[1] for f in good])), static


def anchor_quantiles(low):
    """What a later chunk aligns its first frame to (see ``Stabilizer.align``)."""
    lo, hi = np.percentile(low, (5.0, 95.0))
    return float(lo), float(hi)


class FlickerMeter:
    """Mean frame-to-frame change of static pixels, before and after, in % of the 0..1 range.

    ``add(before, after)`` takes each frame's depth maps (0..1, near = bright, any size; small
    copies are enough): ``before`` as each frame alone would give it, ``after`` as written.
    """

    def __init__(self, size=DEFAULT_SIZE):
        self.size = size
        self._last = None
        self._sums = [0.0, 0.0]
        self.pairs = 0

    def add(self, before, after):
        before, after = (
            small(np.asarray(before, np.float32), self.size),
            small(np.asarray(after, np.float32), self.size),
        )
        if self._last is not None and self._last[0].shape == before.shape:
            prev_before, prev_after = self._last
            _, _, static = fit_scale_shift(after, prev_after)
            static = static.reshape(after.shape)
            if static.any():
                self._sums[0] += float(np.abs(before - prev_before)[static].mean())
                self._sums[1] += float(np.abs(after - prev_after)[static].mean())
                self.pairs += 1
        self._last = (before, after)

    @property
    def before(self):
        return 100.0 * self._sums[0] / self.pairs if self.pairs else None

    @property
    def after(self):
        return 100.0 * self._sums[1] / self.pairs if self.pairs else None
