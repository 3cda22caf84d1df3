"""Pictures out of Blender: an image or a file (picture), the render and the compositor (render),
the exact Z pass (scene_z), the render in a child Blender (child, child_main), and which source a
generation uses (sources)."""
