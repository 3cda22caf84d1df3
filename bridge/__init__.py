"""bpy <-> engine: pixels out of Blender, depth maps back in as images and compositor nodes."""
