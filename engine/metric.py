"""Metric depth from a relative one: scale and shift fitted in inverse-depth space to known distances.

A depth network gives affine-invariant inverse depth: its x (engine.units) is a * (1 / distance) + b
for an unknown scale a > 0 and shift b. Known distances at some pixels (the Scene Z of the same
render, or points a user picked with a distance each) fix them: 1 / distance = s * x + t, a straight
line fitted by least squares, robustly: pixels whose residual is far beyond the typical one
(depth edges, where network and Z pass disagree by a pixel; sky) are down-weighted (Tukey's biweight
on the residual over its median absolute deviation), so they do not tilt the line.

    fit = align(values, units, known)             known: distances per pixel (inf/nan/<=0: unknown)
    fit = align_points(values, units, points)     points: [(u, v, distance)], u, v in 0..1 (v from the bottom)
    fit.units                                     the aligned map's units: 'inverse-distance', scene units
    fit.residual                                  median relative distance error over the points used
    distances(values, fit.units)                  (engine.units) the map in scene units

Two points give an exact line (residual 0); with three or more the residual says how well the
network's shape agrees with the known distances.
"""

from dataclasses import dataclass, replace

import numpy as np

from .errors import InvalidSettingsError
from .units import DepthUnits, distances, surface_range

_TUKEY_C = 4.685  # biweight constant: 95 % efficiency for Gaussian residuals
_MAD_TO_SIGMA = 1.4826
_ITERATIONS = 10


@dataclass(frozen=True)
class MetricFit:
    scale: float  # s in 1 / distance = s * x + t
    shift: float  # t
    residual: float  # median |fitted distance / known distance - 1| over the inliers
    rms_inverse: float  # RMS residual in inverse distance (1 / scene units) over the inliers
    points: int  # how many known distances there were
    inliers: int  # how many the robust fit kept (weight > 0)
    units: DepthUnits  # the aligned map's units

    def describe(self) -> str:
        return (
            f"scale {self.scale:.6g}, shift {self.shift:.6g} (1/distance = scale * network value + shift); "
            f"median error {100 * self.residual:.3g} % over {self.inliers} of {self.points} known distances "
            f"({self.units.fit['to']})"
        )


def fit_line(x, y, *, robust=True):
    """(s, t, weights) of y ~ s * x + t: least squares, then Tukey-biweighted reweighting."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    w = np.ones_like(x)
    s = t = 0.0
    for _ in range(_ITERATIONS if robust and x.size > 2 else 1):
        sw = w.sum()
        mx, my = (w * x).sum() / sw, (w * y).sum() / sw
        var = (w * (x - mx) ** 2).sum()
        if var <= 0:
            raise InvalidSettingsError(
                "The known distances all fall on one depth value: pick points at different "
                "depths (at least two), or align to a map with more than one surface."
            )
        s_new = (w * (x - mx) * (y - my)).sum() / var
        t_new = my - s_new * mx
        r = y - (s_new * x + t_new)
        scale = _MAD_TO_SIGMA * np.median(np.abs(r[w > 0])) if (w > 0).any() else 0.0
        done = abs(s_new - s) <= 1e-12 * abs(s_new) and abs(t_new - t) <= 1e-12 * max(abs(t_new), abs(my))
        s, t = s_new, t_new
        if scale <= 1e-15 * max(abs(my), 1e-300) or done:
            break
        z = r / (_TUKEY_C * scale)
        w = np.where(np.abs(z) < 1.0, (1.0 - z * z) ** 2, 0.0)
    return s, t, w


def _fit(x, known, units, what):
    y = 1.0 / known
    s, t, w = fit_line(x, y)
    if s <= 0:
        raise InvalidSettingsError(
            f"The depth map runs the other way from the {what}: nearer points are darker. "
            "Check the map's Invert setting (Fathom expects near = bright) or the distances."
        )
    fitted = s * x + t
    kept = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(y[kept] / np.where(fitted[kept] > 0, fitted[kept], np.nan) - 1.0)
    residual = float(np.nanmedian(rel)) if np.isfinite(rel).any() else float("inf")
    rms = float(np.sqrt(np.mean((y[kept] - fitted[kept]) ** 2)))
    aligned = replace(
        units,
        quantity="inverse-distance",
        source="metric-fit",
        offset=s * units.offset + t,
        span=s * units.span,
        near=None,
        far=None,
        fit={
            "to": what,
            "model": units.source,
            "scale": s,
            "shift": t,
            "residual": residual,
            "points": int(x.size),
            "inliers": int(kept.sum()),
        },
    )
    return MetricFit(float(s), float(t), residual, rms, int(x.size), int(kept.sum()), aligned)


def _check_relative(values, units):
    if units is None:
        raise InvalidSettingsError(
            "This depth map does not say what its values are (it was made before Fathom "
            "recorded units): generate it again, then align it."
        )
    values = np.asarray(values)
    if values.ndim != 2 or 0 in values.shape:
        raise InvalidSettingsError(f"Expected an HxW depth map, got shape {values.shape}.")
    return values


def _usable(values, units):
    """Pixels whose value is exact: finite, and not at a clipped end of a 'v2-style' map."""
    ok = np.isfinite(values)
    if units.clipped:
        ok &= (values > 0.0) & (values < 1.0)
    return ok


def align(values, units: DepthUnits, known, *, what="Scene Z", max_points=200_000) -> MetricFit:
    """Fit a depth map (stored ``values`` with ``units``) to ``known`` distances per pixel (an HxW
    array of scene units; inf, nan or <= 0 where unknown, e.g. background). A ``known`` map of another
    size is resampled (nearest pixel) to the depth map's. At most ``max_points`` evenly spaced pixels
    are used (the fit does not need every pixel of a large map)."""
    values = _check_relative(values, units)
    known = np.asarray(known, np.float64)
    if known.ndim != 2:
        raise InvalidSettingsError(f"Expected HxW known distances, got shape {known.shape}.")
    if known.shape != values.shape:
        known = resample_nearest(known, values.shape)
    ok = _usable(values, units) & np.isfinite(known) & (known > 0)
    count = int(ok.sum())
    if count < 2:
        raise InvalidSettingsError(
            f"The {what} has fewer than two known distances where the depth map has a value: nothing to align to."
        )
    step = max(1, count // max_points)
    x = units.decode(values[ok][::step])
    fit = _fit(x, known[ok][::step], units, what)
    # The map's own near and far where the known distances had surfaces (its background is noise).
    near, far = (float(v) for v in np.percentile(distances(values[ok], fit.units), (0.5, 99.5)))
    return replace(fit, units=replace(fit.units, near=near, far=far))


def sample(values, u, v, radius=1):
    """The median of the (2 radius + 1)^2 values around (u, v) in 0..1 (u from the left, v from the
    bottom, as Blender's Image Editor), so one noisy pixel does not decide."""
    if not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0):
        raise InvalidSettingsError(f"The point ({u:g}, {v:g}) is outside the picture: use 0..1 for both.")
    h, w = np.shape(values)
    col = min(w - 1, int(u * w))
    row = min(h - 1, int((1.0 - v) * h))  # the array's rows run from the top
    window = np.asarray(values)[max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1]
    return float(np.median(window))


def align_points(values, units: DepthUnits, points) -> MetricFit:
    """Fit to points picked in the picture: [(u, v, distance), ...], at least two at different depths."""
    values = _check_relative(values, units)
    points = [tuple(float(c) for c in p) for p in points]
    if len(points) < 2 or any(len(p) != 3 for p in points):
        raise InvalidSettingsError(
            "Metric alignment needs at least two points, each (u, v, distance): "
            "pick two or more points in the picture and give each its distance."
        )
    bad = [p for p in points if not (np.isfinite(p[2]) and p[2] > 0)]
    if bad:
        raise InvalidSettingsError(
            f"A point's distance must be positive: got {bad[0][2]:g} at ({bad[0][0]:g}, {bad[0][1]:g})."
        )
    x = units.decode(np.array([sample(values, u, v) for u, v, _ in points]))
    fit = _fit(x, np.array([p[2] for p in points]), units, f"{len(points)} picked points")
    near, far = surface_range(distances(values, fit.units), _usable(values, units))
    return replace(fit, units=replace(fit.units, near=near, far=far))


def resample_nearest(values, shape):
    """Nearest-pixel resize of an HxW array to ``shape`` (pixel centres mapped onto pixel centres)."""
    h, w = shape
    rows = np.minimum(((np.arange(h) + 0.5) * values.shape[0] / h).astype(int), values.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * values.shape[1] / w).astype(int), values.shape[1] - 1)
    return np.asarray(values)[rows][:, cols]
