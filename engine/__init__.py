"""Fathom's depth engine: everything that does not need Blender.

Imported as ``bl_ext.<repo>.fathom.engine`` inside Blender and as the top-level package
``engine`` by the server, the tests and the benchmarks, so modules in here use only
relative imports among themselves and never import ``bpy``.
"""
