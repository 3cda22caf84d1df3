"""The displacement setup's geometry-nodes inputs reach the geometry on every Blender the manifest
promises: Blender 5.2 sets a modifier's inputs through RNA (``modifier.properties.inputs``), where 4.2
to 5.0 take ID properties (``modifier[identifier]``); 5.2 raised a TypeError on every scene."""

import pytest


@pytest.mark.smoke
def test_displacement_strength_reaches_the_displaced_plane(blender):
    got = blender("""
        import numpy as np
        scene = bpy.context.scene          # the factory scene: a cube, a light and a camera
        w, h = 64, 48
        ramp = np.repeat(np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :], h, axis=0)  # far left, near right
        depth = bpy.data.images.new("depth", w, h, float_buffer=True)
        depth.colorspace_settings.name = "Non-Color"
        depth.pixels.foreach_set(np.dstack([ramp, ramp, ramp, np.ones_like(ramp)]).ravel())
        picture = bpy.data.images.new("picture", w, h)

        def span(strength):
            assert bpy.ops.fathom.setup_displacement(depth="depth", picture="picture", distance=10.0,
                                                     strength=strength, resolution=32, subdivisions=0) == {"FINISHED"}
            plane = bpy.data.objects["Fathom Depth Plane"]
            mesh = plane.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
            co = np.empty(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", co)
            view_depth = -co.reshape(-1, 3)[:, 2]  # the plane's space is the camera's
            return float(view_depth.max() - view_depth.min()), float(view_depth.max())

        emit({"version": bpy.app.version_string, "two": span(2.0), "four": span(4.0), "zero": span(0.0)})
    """)
    (two, far2), (four, far4), (zero, far0) = got["two"], got["four"], got["zero"]
    assert zero < 1e-4 and abs(far0 - 10.0) < 1e-3, got  # no strength: the flat plane at the distance
    assert 1.6 < two < 2.05, got  # the ramp's 0..1 moves near parts ~strength closer
    assert abs(four - 2 * two) < 0.05 * four, got  # and the input follows a second run
    assert abs(far2 - 10.0) < 0.1 and abs(far4 - 10.0) < 0.1, got  # depth 0 stays at the distance
