"""bpy <-> engine: pixels out of Blender, depth maps back in as images and compositor nodes.

    capture/     pictures out of Blender: image, file, render, compositor, Scene Z, the child render
    generation/  one generation: the job, the backend choice, result files/images/nodes, the worker thread
    remote/      the depth server: online check, remote job, account view, pending jobs
    setups/      one-click depth workflows (displacement, depth of field, fog, stereo, export)
    cli/         `blender -c fathom ...`
    prefs.py     the add-on's preferences as bridge code reads them
    files.py     result files: the next free numbered name, Non-Color images with a relative path
    redraw.py    redraw the editors that show Fathom

Imports point down only: engine <- bridge <- operators/panels/preferences <- __init__.
"""
