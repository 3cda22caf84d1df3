"""Scenario code shared by the setups tests (run inside Blender by the `blender` fixture): a small
Cycles scene, its render as a picture file and its exact depth (Scene Z) as an EXR, loaded as images."""

SCENE = """
import math
import numpy as np
from bl_ext.user_default.fathom.bridge.capture import render as render_capture
from bl_ext.user_default.fathom.bridge.capture import scene_z
from bl_ext.user_default.fathom.bridge.setups import common
from bl_ext.user_default.fathom.engine.encode import encode_png
from bl_ext.user_default.fathom.engine.exr import write_exr

W, H = 160, 90

def material(name, rgb, checker=0.0):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    nodes = m.node_tree.nodes
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    if checker:
        tex = nodes.new("ShaderNodeTexChecker")
        tex.inputs["Scale"].default_value = checker
        tex.inputs["Color1"].default_value = (*rgb, 1.0)
        tex.inputs["Color2"].default_value = (0.05, 0.05, 0.05, 1.0)
        m.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return m

def add(op, name, location, rgb, checker=0.0, **kw):
    op(location=location, **kw)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.materials.append(material(name, rgb, checker))
    return obj

def build_scene(checker=0.0):
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the preferences, so the extension stays enabled
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    # Sampling, denoising and the pixel filter stay Cycles' own (a few seconds a render at this size).
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    # Colour management stays Blender's default (AgX): setups must be right there.
    add(bpy.ops.mesh.primitive_uv_sphere_add, "Near sphere", (-1.2, -6.0, 1.2), (0.8, 0.2, 0.15), checker, radius=0.8)
    add(bpy.ops.mesh.primitive_cube_add, "Middle cube", (1.5, 2.0, 1.0), (0.2, 0.4, 0.8), checker, size=2.0)
    add(bpy.ops.mesh.primitive_cube_add, "Far wall", (3.0, 28.0, 2.0), (0.6, 0.6, 0.65), checker, size=6.0)
    add(bpy.ops.mesh.primitive_plane_add, "Ground", (0, 10, 0), (0.35, 0.4, 0.3), checker, size=40)
    world = bpy.data.worlds.new("Sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.55, 0.65, 0.85, 1.0)
    scene.world = world
    bpy.ops.object.light_add(type="SUN", rotation=(math.radians(50), 0, math.radians(30)))
    bpy.context.active_object.data.energy = 3.0
    bpy.ops.object.camera_add(location=(0, -11.0, 1.6), rotation=(math.radians(88), 0, 0))
    scene.camera = bpy.context.active_object
    scene.camera.name = "Camera"
    bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")  # so //generated/ exists
    return scene

def load_file(name, suffix, data):
    path = f"{tmp}/{name}{suffix}"
    open(path, "wb").write(data)
    image = bpy.data.images.load(path)
    image.name = name
    image.use_fake_user = True  # kept when the .blend is saved
    return image

def load_picture(rgb, name):
    return load_file(name, ".png", encode_png(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)))

def load_depth(depth, name="depth"):
    image = load_file(name, ".exr", write_exr(np.asarray(depth, np.float32)))
    image.colorspace_settings.name = "Non-Color"
    return image

def picture_and_depth(scene, camera=None):
    rgb, _ = render_capture.render_scene(scene, camera=camera)
    z, background, _ = scene_z.render_z(scene, camera=camera)
    depth, near_is_bright = scene_z.z_to_depth(z, background)  # standard: 1/z over 1/z_min, background 0
    assert near_is_bright
    return rgb, depth, z, background

def loaded_scene(**build):
    # build_scene(**build) with its render loaded as the image "source" and its Scene Z as "depth".
    scene = build_scene(**build)
    rgb, depth, z, background = picture_and_depth(scene)
    load_picture(rgb, "source"); load_depth(depth)
    return scene, rgb, depth, z, background

def psnr(a, b, mask):
    return float(10 * np.log10(1.0 / max(1e-12, float(((a - b) ** 2)[mask].mean()))))

def rendered(scene, camera=None):
    return render_capture.render_scene(scene, camera=camera)[0]

def tagged(kind):
    objects = [o.name for o in bpy.data.objects if o.get("fathom_setup") == kind]
    tree = common.compositor_tree(bpy.context.scene, create=False)
    nodes = [n.name for n in tree.nodes if n.get("fathom_setup") == kind] if tree is not None else []
    return objects, nodes
"""
