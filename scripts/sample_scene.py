"""Build Fathom's sample scene in Blender (bpy) and render it with Cycles.

Run with the bpy environment: `.venv-blender/bin/python scripts/sample_scene.py OUT.png [--blend OUT.blend]`.
The scene has near, middle and far objects on a ground plane under a sun, seen by one camera,
so its depth map has something to show. Small and few samples: it renders in seconds on a CPU.
"""

import argparse
import math
import sys


def build_scene(width=640, height=360, samples=16):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    if samples is not None:  # None: Cycles' own sampling, as a user renders (samples, adaptive, denoising)
        scene.cycles.samples = samples
        scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"

    def material(name, rgb):
        mat = bpy.data.materials.new(name)
        mat.diffuse_color = (*rgb, 1.0)
        if mat.node_tree is None:  # Blender 4.x: new materials have no nodes yet
            mat.use_nodes = True
        mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*rgb, 1.0)
        return mat

    def add(op, name, location, rgb, **kw):
        op(location=location, **kw)
        obj = bpy.context.active_object
        obj.name = name
        obj.data.materials.append(material(name, rgb))
        return obj

    add(bpy.ops.mesh.primitive_plane_add, "Ground", (0, 6, 0), (0.35, 0.4, 0.3), size=40)
    sphere = add(
        bpy.ops.mesh.primitive_uv_sphere_add,
        "Near sphere",
        (-1.2, -1.0, 0.8),
        (0.8, 0.2, 0.15),
        radius=0.8,
        segments=48,
        ring_count=24,
    )
    for poly in sphere.data.polygons:
        poly.use_smooth = True
    add(bpy.ops.mesh.primitive_cube_add, "Middle cube", (1.5, 3.0, 1.0), (0.2, 0.4, 0.8), size=2.0)
    add(bpy.ops.mesh.primitive_cylinder_add, "Far tower", (-2.5, 10.0, 2.5), (0.85, 0.8, 0.6), radius=0.7, depth=5)
    add(bpy.ops.mesh.primitive_cube_add, "Far wall", (3.0, 16.0, 2.0), (0.6, 0.6, 0.65), size=4.0)

    world = bpy.data.worlds.new("Sky")
    if world.node_tree is None:
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.55, 0.65, 0.85, 1.0)
    scene.world = world

    bpy.ops.object.light_add(type="SUN", location=(0, 0, 10), rotation=(math.radians(50), 0, math.radians(30)))
    bpy.context.active_object.data.energy = 3.0
    bpy.ops.object.camera_add(location=(0, -11.0, 2.6), rotation=(math.radians(84), 0, 0))
    scene.camera = bpy.context.active_object
    scene.camera.name = "Camera"
    return scene


def set_blur_size(blur, size):
    """A compositor Blur node's size in pixels, where this Blender keeps it: properties up to 4.4
    (the Size socket is a factor there), a Size vector socket from 4.5."""
    if blur.inputs["Size"].type != "VECTOR":
        blur.size_x = blur.size_y = size
    else:
        blur.inputs["Size"].default_value = (size, size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", help="PNG file to render to")
    parser.add_argument("--blend", help="also save the scene as this .blend")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args(argv)
    import bpy

    scene = build_scene(args.width, args.height, args.samples)
    scene.render.filepath = args.output
    bpy.ops.render.render(write_still=True)
    if args.blend:
        bpy.ops.wm.save_as_mainfile(filepath=args.blend)
    print(f"rendered {args.output}")


if __name__ == "__main__":
    sys.exit(main())
