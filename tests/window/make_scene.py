"""Builds a test scene in the Blender that will open it (files saved by 5.x do not open in 4.3):

    blender -b --factory-startup --python tests/window/make_scene.py -- OUT.blend

The sample scene (scripts/sample_scene.py: objects near to far, a camera, Cycles without
denoising, which Debian's Blender lacks) plus "Photo", a packed 640x360 picture for image sources.
"""

import os
import sys

import bpy
import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from scripts.sample_scene import build_scene  # noqa: E402

out = sys.argv[sys.argv.index("--") + 1]
build_scene(320, 180, 16)
w, h = 640, 360
y, x = np.mgrid[0:h, 0:w].astype(np.float32)
rgb = [0.5 + 0.5 * np.sin(x / 23.0), y / h, 0.5 + 0.5 * np.cos((x + y) / 41.0)]
photo = bpy.data.images.new("Photo", w, h)
photo.pixels.foreach_set(np.dstack([*rgb, np.ones((h, w), np.float32)]).ravel())
photo.pack()
photo.use_fake_user = True  # no user yet: kept in the file all the same
bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(out))
