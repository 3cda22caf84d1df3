"""Depth Anything V2's input contract: aspect kept, short side to the chosen resolution,
each side a multiple of 14, bicubic, scaled to 0..1, ImageNet normalisation, NCHW float32.

The resampling is Pillow's bicubic, the same kernel the Hugging Face image processor uses.
8-bit pictures are resized as 8-bit RGB images, exactly as that processor does; 16-bit and float
pictures are resized per channel in 32-bit float so their extra precision survives.
"""

import numpy as np

PATCH = 14
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _multiple_of(value, multiple=PATCH):
    # Round to the nearest multiple (Python's round, as the reference processor does), never below one patch.
    return max(multiple, round(value / multiple) * multiple)


def network_size(height, width, resolution):
    """(height, width) the network sees: short side scaled to ``resolution``, both multiples of 14."""
    scale = resolution / min(height, width)
    return _multiple_of(scale * height), _multiple_of(scale * width)


def resize_rgb(rgb, size):
    """Bicubic resize of an HxWx3 uint8, uint16 or float array to ``size`` = (height, width).

    Returns float32 in 0..1 (8/16-bit input) or the input's own scale (float input).
    """
    from PIL import Image

    height, width = size
    if rgb.shape[:2] == (height, width):
        return _to_unit_float(rgb)
    if rgb.dtype == np.uint8:
        out = Image.fromarray(np.ascontiguousarray(rgb), "RGB").resize((width, height), Image.Resampling.BICUBIC)
        return np.asarray(out, np.float32) / np.float32(255.0)
    channels = _to_unit_float(rgb)
    out = np.empty((height, width, 3), np.float32)
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(channels[:, :, c]), "F")
        out[:, :, c] = np.asarray(plane.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    return out


def resize_plane(plane, size, bicubic=False):
    """Resize a float32 HxW map to ``size`` = (height, width); bilinear unless ``bicubic``."""
    from PIL import Image

    height, width = size
    if plane.shape == (height, width):
        return plane.astype(np.float32, copy=False)
    kernel = Image.Resampling.BICUBIC if bicubic else Image.Resampling.BILINEAR
    img = Image.fromarray(np.ascontiguousarray(plane, np.float32), "F")
    return np.asarray(img.resize((width, height), kernel), np.float32)


def _to_unit_float(rgb):
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255.0)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(65535.0)
    return rgb.astype(np.float32, copy=False)


def to_tensor(rgb_unit):
    """HxWx3 float 0..1 -> 1x3xHxW float32, ImageNet-normalised."""
    x = (rgb_unit - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def prepare(rgb, resolution):
    """The whole input contract: picture -> (tensor 1x3xhxw, (h, w))."""
    size = network_size(rgb.shape[0], rgb.shape[1], resolution)
    return to_tensor(resize_rgb(rgb, size)), size
