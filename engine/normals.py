"""Normal maps from depth maps, for relighting a picture.

The depth map (near = bright) is taken as a height field; its slopes give the surface normal,
encoded the way Blender's Normal Map node reads a tangent-space map: OpenGL convention (green
points up), RGB = normal * 0.5 + 0.5.
"""

import numpy as np


def normal_map(depth, strength=1.0, near_is_bright=True):
    """HxW depth -> HxWx3 float32 normal map in 0..1. ``strength`` scales the relief."""
    height = depth.astype(np.float32) if near_is_bright else 1.0 - depth.astype(np.float32)
    h, w = height.shape
    # Slopes per pixel, scaled so strength 1 maps the full 0..1 range over the picture's width.
    gy, gx = np.gradient(height * (strength * max(h, w)))
    n = np.stack([-gx, gy, np.ones_like(height)], axis=2)  # rows run down the picture: flip y
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    return (n * 0.5 + 0.5).astype(np.float32)
