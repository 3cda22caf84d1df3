"""An independent antialiased bicubic resize in plain numpy, written for the parity tests.

It follows the published definition of the filter Pillow and the Hugging Face processors use:
Keys' cubic with a = -0.5, its support widened by the scale factor when shrinking (antialiasing),
sample centres at (i + 0.5) * scale, weights normalised per output pixel, horizontal pass first.
"""

import numpy as np

A = -0.5


def _cubic(x):
    x = np.abs(x)
    return np.where(x < 1, ((A + 2) * x - (A + 3)) * x * x + 1, np.where(x < 2, (((x - 5) * x + 8) * x - 4) * A, 0.0))


def _weights(in_size, out_size):
    scale = in_size / out_size
    widen = max(scale, 1.0)
    support = 2.0 * widen
    matrix = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), in_size)
        taps = np.arange(lo, hi)
        w = _cubic((taps - centre + 0.5) / widen)
        matrix[i, lo:hi] = w / w.sum()
    return matrix


def resize_bicubic(image, height, width):
    """HxW or HxWxC float array -> (height, width[, C]) float64."""
    img = np.asarray(image, np.float64)
    rows = _weights(img.shape[0], height)
    cols = _weights(img.shape[1], width)
    horizontal = np.tensordot(img, cols, axes=([1], [1]))  # H x C x W' (or H x W')
    if img.ndim == 3:
        horizontal = horizontal.transpose(0, 2, 1)  # H x W' x C
    return np.tensordot(rows, horizontal, axes=([1], [0]))
