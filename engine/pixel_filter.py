"""A renderer's pixel filter, and the picture that comes back unblurred through it.

A displacement setup's plane shows its picture pixel for pixel from the original camera. Rendering it
filters the picture's pixels a second time: the texture's bilinear lookup (a one-pixel tent) under
Cycles' pixel filter (1.5 px Blackman-Harris by default), about [0.17, 0.67, 0.17] across each axis,
which costs a render's finest detail (33 dB against the original on a 6 px checker). The texture is
pre-sharpened by the exact inverse of that blur, so the re-render gives the picture back (56 dB).

taps(filter_type, width) -> [t0, t1, t2, t3]
    the blur's weights at 0, 1, 2 and 3 pixels (symmetric, summing to 1) for Cycles' filter types:
    Cycles samples each axis from its filter table, Blackman-Harris over +-width, Gaussian with sigma
    width / 4 over +-1.5 width, Box over +-width / 2; each convolved with the bilinear tent.
presharpen(image, taps) -> float32 image whose blur by ``taps`` (rows, then columns, edges extended)
    is ``image``: the inverse filter (its spectrum 1 / the blur's, Tikhonov-limited where the blur removes
    almost everything) as separable taps over the image with mirrored edges (half a second for 1920x1080 RGB, ~100 MiB).
    Values may leave 0..1 (the sharpened texture overshoots at edges): an Emission shader keeps them.
"""

import numpy as np

FILTER_TYPES = ("BLACKMAN_HARRIS", "GAUSSIAN", "BOX")
REACH = 3  # pixels either side; Gaussian 1.5 px: 2.25 px + the tent
_STEP = 1e-3  # integration step, in pixels
_PERIOD = 1024  # samples of the inverse filter's spectrum: far longer than its taps reach
_LIMIT = 0.02  # Tikhonov: frequencies the blur keeps less of than this are not restored in full


def _profile(filter_type: str, width: float, x: np.ndarray) -> np.ndarray:
    if filter_type == "BOX":
        return (np.abs(x) <= width / 2).astype(np.float64)
    if filter_type == "GAUSSIAN":
        return np.where(np.abs(x) <= 1.5 * width, np.exp(-8.0 * (x / width) ** 2), 0.0)
    if filter_type == "BLACKMAN_HARRIS":
        a = np.pi * (x / width + 1.0)
        bh = 0.35875 - 0.48829 * np.cos(a) + 0.14128 * np.cos(2 * a) - 0.01168 * np.cos(3 * a)
        return np.where(np.abs(x) <= width, bh, 0.0)
    raise ValueError(f"Unknown pixel filter {filter_type!r}: expected one of {', '.join(FILTER_TYPES)}.")


def taps(filter_type: str, width: float) -> list[float]:
    x = np.arange(-(REACH + 1), REACH + 1 + _STEP / 2, _STEP)
    profile = _profile(filter_type, float(width), x)
    if profile.sum() <= 0:  # narrower than the integration step: the filter is a point
        profile = (np.abs(x) < _STEP / 2).astype(np.float64)
    profile /= profile.sum()
    weights = [float((profile * np.maximum(0.0, 1.0 - np.abs(k - x))).sum()) for k in range(REACH + 1)]
    total = weights[0] + 2 * sum(weights[1:])  # 1 but for the grid's ends
    return [t / total for t in weights]


def _response(weights, n: int) -> np.ndarray:
    """The blur's gain at each frequency of a mirrored signal of length 2n."""
    w = np.pi * np.arange(2 * n) / n
    return weights[0] + 2 * sum(t * np.cos(k * w) for k, t in enumerate(weights[1:], start=1))


def _gain(weights, n: int) -> np.ndarray:
    h = _response(weights, n)
    return h / (h * h + _LIMIT * _LIMIT)


def inverse_taps(weights) -> np.ndarray:
    """The inverse filter as symmetric taps (0, 1, 2, ... pixels), cut where they fall below 1e-6: its
    impulse response decays geometrically (about 0.27 a pixel for the default filter: 11 taps)."""
    impulse = np.real(np.fft.ifft(_gain(weights, _PERIOD // 2)))[: _PERIOD // 2]
    big = np.nonzero(np.abs(impulse) > 1e-6 * abs(impulse[0]))[0]
    return impulse[: int(big[-1]) + 1]


def _convolve_rows(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``image`` (rows first) convolved along its first axis by symmetric ``taps``, edges mirrored."""
    reach, n = len(taps) - 1, image.shape[0]
    padded = np.pad(image, [(reach, reach)] + [(0, 0)] * (image.ndim - 1), mode="symmetric")
    out = np.float32(taps[0]) * image
    for k in range(1, reach + 1):
        out += np.float32(taps[k]) * (padded[reach - k : reach - k + n] + padded[reach + k : reach + k + n])
    return out


def presharpen(image: np.ndarray, weights) -> np.ndarray:
    image = np.asarray(image, np.float32)
    taps = inverse_taps(weights)
    rows = _convolve_rows(image, taps)
    return np.ascontiguousarray(np.swapaxes(_convolve_rows(np.swapaxes(rows, 0, 1), taps), 0, 1))


def blur(image: np.ndarray, weights) -> np.ndarray:
    """``image`` blurred by ``taps`` along rows and columns, edges extended (what a re-render does)."""
    out = np.asarray(image, np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        index = np.arange(n)
        total = weights[0] * out
        for k, t in enumerate(weights[1:], start=1):
            total = total + t * (
                np.take(out, np.clip(index - k, 0, n - 1), axis=axis)
                + np.take(out, np.clip(index + k, 0, n - 1), axis=axis)
            )
        out = total
    return out.astype(np.float32)
