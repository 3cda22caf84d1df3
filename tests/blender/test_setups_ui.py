"""The setups in the installed extension's UI: registered with undo, greyed out with a reason when there is
no depth image, defaulting to the newest Fathom result and its source picture, and unregistered cleanly."""

import pytest

from tests.blender.setups_scene import SCENE


def test_setups_register_poll_and_default_to_the_fathom_result(blender):
    got = blender(
        SCENE
        + """
from bl_ext.user_default.fathom.bridge.generation import results
ops = ["setup_displacement", "setup_dof", "pick_focus", "setup_fog", "setup_stereo", "normal_map", "export_mesh",
       "remove_setup"]
bpy.ops.wm.read_homefile(use_empty=True)
messages = {}
for name in ("setup_dof", "setup_stereo", "export_mesh"):
    try:
        getattr(bpy.ops.fathom, name)()
    except RuntimeError as exc:
        messages[name] = str(exc)
scene = build_scene()
rgb, depth, z, background = picture_and_depth(scene)
load_picture(rgb, "source")
result = load_depth(depth, "source_depth_001")
result[results.IMAGE_KEY] = {"source": {"kind": "image", "image": "source"}, "near_is_bright": True}
stereo = bpy.ops.fathom.setup_stereo()            # no names: the newest result and its source
made = [i.name for i in bpy.data.images if i.get("fathom_setup") == "stereo"]
panels = [p for p in ("FATHOM_PT_setups_view3d", "FATHOM_PT_setups_image", "FATHOM_PT_setups_compositor")
          if hasattr(bpy.types, p)]
undo = {name: sorted(getattr(bpy.types, "FATHOM_OT_" + name).bl_options) for name in ops}
has_settings = "fathom_setups" in bpy.types.Scene.bl_rna.properties
addon_utils.disable("bl_ext.user_default.fathom")
emit({"messages": messages, "stereo": sorted(stereo), "made": made, "panels": panels, "undo": undo,
      "settings": has_settings, "after_disable": "fathom_setups" in bpy.types.Scene.bl_rna.properties
      or hasattr(bpy.types, "FATHOM_PT_setups_view3d")})
"""
    )
    assert "Generate a depth map first" in got["messages"]["setup_dof"]
    assert "Generate a depth map first" in got["messages"]["setup_stereo"]
    assert "Build the Displacement setup first" in got["messages"]["export_mesh"]
    assert got["stereo"] == ["FINISHED"] and got["made"] == ["source stereo"]
    assert len(got["panels"]) == 3 and got["settings"] and not got["after_disable"]
    assert all(v == ["REGISTER", "UNDO"] for k, v in got["undo"].items() if k != "export_mesh"), got["undo"]


@pytest.mark.smoke  # properties from mixins and factories register differently across Blender versions
def test_shared_property_definitions_register_on_every_class_that_uses_them(blender):
    got = blender("""
        def described(properties, names):
            return {n: [properties[n].name, getattr(properties[n], "default", None), properties[n].is_skip_save]
                    for n in names if n in properties}

        def of(op):
            return getattr(bpy.ops.fathom, op).get_rna_type().properties

        ok = bpy.ops.fathom.metric_point_add(x=0.25, y=0.75, distance=3.0)
        point = bpy.context.scene.fathom_setups.metric_points[0]
        emit({"pick_focus": described(of("pick_focus"), ["x", "y", "depth"]),
              "point_add": described(of("metric_point_add"), ["x", "y", "distance"]),
              "point": described(point.bl_rna.properties, ["x", "y", "distance"]),
              "setup": described(of("setup_fog"), ["depth", "picture"]),
              "export": described(of("export_mesh"), ["filepath", "object_name"]),
              "result": described(of("mark_asset"), ["image_name"]),
              "added": [sorted(ok), point.x, point.y, point.distance],
              "undo": {n: sorted(getattr(bpy.types, "FATHOM_OT_" + n).bl_options)
                       for n in ("mark_asset", "delete_result", "regenerate_result")}})
    """)
    xy = {"x": ["X", 0.5, False], "y": ["Y", 0.5, False]}
    assert got["pick_focus"] == {**xy, "depth": ["Depth Image", "", True]}
    assert got["point_add"] == got["point"] == {**xy, "distance": ["Distance", 1.0, False]}
    assert got["setup"] == {"depth": ["Depth Image", "", True], "picture": ["Picture", "", True]}
    assert got["export"] == {"filepath": ["File", "", True], "object_name": ["Object", "", True]}
    assert got["result"] == {"image_name": ["Image", "", True]}
    assert got["added"] == [["FINISHED"], 0.25, 0.75, 3.0]
    assert got["undo"] == {
        "mark_asset": ["REGISTER", "UNDO"],
        "delete_result": ["REGISTER", "UNDO"],
        "regenerate_result": ["UNDO"],
    }
