"""Rendered previews for `make demo`, in Blender (bpy) with the installed extension:

    python scripts/demo_previews.py --home PROFILE --blend out/scene.blend --out out/

- displacement_moved.png: the displaced plane seen from a camera moved sideways, only the plane rendering,
  so the 2.5D effect shows (and displacement_original.png from the scene's own camera, which gives the
  render back);
- dof.png: the scene through its compositor, where the depth of field setup sits.
The .blend itself is not changed. Run with .venv-blender/bin/python (bpy 5.0.1).
"""

import argparse
import os
import sys
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--blend", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    os.environ["HOME"] = os.path.abspath(args.home)
    os.environ.pop("XDG_CONFIG_HOME", None)
    import bpy  # reads HOME now

    bpy.ops.wm.read_userpref()
    bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    from bl_ext.user_default.fathom.bridge.capture import render
    from bl_ext.user_default.fathom.engine.encode import encode_png, write_file

    scene = bpy.context.scene
    out = Path(args.out)

    def save(name, rgb):
        import numpy as np

        pixels = np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
        write_file(out / name, encode_png(pixels), overwrite=True)
        print(f"   {out / name}")

    plane = next(
        (o for o in scene.objects if o.get("fathom_setup") == "displacement" and o.get("fathom_role") == "plane"), None
    )
    if plane is not None:
        others = [o for o in scene.objects if o.type == "MESH" and o != plane and not o.hide_render]
        moved = scene.camera.copy()
        scene.collection.objects.link(moved)
        moved.location.x += 1.5
        moved.rotation_euler.z += 0.08  # turned back towards the middle of the scene
        try:
            for obj in others:
                obj.hide_render = True
            save("displacement_original.png", render.render_scene(scene)[0])
            save("displacement_moved.png", render.render_scene(scene, camera=moved)[0])
        finally:
            for obj in others:
                obj.hide_render = False
            bpy.data.objects.remove(moved)
    save("dof.png", render.capture_compositor(scene)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
