"""Undo in advance the blur a re-render adds to a picture shown on a surface.

A render's pixels are the scene filtered once by the renderer's pixel filter. Shown as a texture
on a plane and rendered again from the same camera, they are filtered a second time (the texture's
bilinear lookup, then the pixel filter once more), which softens fine detail by several dB. The
picture a setup textures with is therefore pre-sharpened by a regularised (Wiener) inverse of that
second blur, so that the re-render gives back the picture.

The kernel is Cycles' default: a separable Blackman-Harris of twice the film's filter width (Cycles
doubles the width for this window, see its film code), after a one-pixel tent (bilinear lookup).
"""

import numpy as np

_OVERSAMPLE = 64


def _blackman_harris(x, width):
    t = 2.0 * np.pi * (x / width + 0.5)
    return 0.35875 - 0.48829 * np.cos(t) + 0.14128 * np.cos(2 * t) - 0.01168 * np.cos(3 * t)


def blur_kernel(filter_width: float) -> np.ndarray:
    """The 1-D kernel, at whole-pixel offsets, of a bilinear texture lookup followed by the pixel filter."""
    support = 2.0 * max(filter_width, 1e-3)  # the Blackman-Harris window's full width, in pixels
    reach = int(np.ceil(support / 2 + 1))
    x = np.arange(-reach * _OVERSAMPLE, reach * _OVERSAMPLE + 1) / _OVERSAMPLE
    window = np.where(np.abs(x) <= support / 2, _blackman_harris(x, support), 0.0)
    tent = np.clip(1.0 - np.abs(x), 0.0, None)
    fine = np.convolve(window, tent, mode="same")
    kernel = np.array([fine[np.argmin(np.abs(x - k))] for k in range(-reach, reach + 1)])
    return kernel / kernel.sum()


def _transfer(kernel: np.ndarray, n: int) -> np.ndarray:
    row = np.zeros(n)
    half = len(kernel) // 2
    for i, k in enumerate(kernel):
        row[(i - half) % n] += k
    return np.fft.fft(row)


def precompensate(rgb: np.ndarray, filter_width: float = 1.5, noise: float = 1e-3) -> np.ndarray:
    """``rgb`` (HxWxC, linear light) sharpened so that blurring it by blur_kernel(filter_width) gives it
    back. ``noise`` regularises frequencies the blur nearly removes; the result is clipped at zero."""
    rgb = np.asarray(rgb, np.float64)
    h, w = rgb.shape[:2]
    kernel = blur_kernel(filter_width)
    pad = 4 * len(kernel)  # mirror the borders so the inverse does not ring at them
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    hy, hx = _transfer(kernel, padded.shape[0]), _transfer(kernel, padded.shape[1])
    transfer = hy[:, None] * hx[None, :]
    inverse = np.conj(transfer) / (np.abs(transfer) ** 2 + noise)
    out = np.empty_like(padded)
    for c in range(padded.shape[2]):
        out[:, :, c] = np.real(np.fft.ifft2(np.fft.fft2(padded[:, :, c]) * inverse))
    return np.clip(out[pad : pad + h, pad : pad + w], 0.0, None).astype(np.float32)
