"""The child Blender's side of a background render (the parent's side is bridge.capture.child).

It opens the copy of the user's file, renders as the synchronous path does, saves the arrays into a
.npz file and talks to the parent through marked lines on its standard output.
"""

import json
import os
import threading

import bpy
import numpy as np

from ...engine.errors import FathomError

PROGRESS_MARK = "@@FATHOM-PROGRESS@@"
ERROR_MARK = "@@FATHOM-ERROR@@"
DONE_MARK = "@@FATHOM-DONE@@"  # the result is in place; the child only has to exit
TEMP_MARK = "@@FATHOM-TEMP@@"  # the child's Blender session folder, removed by the parent after a kill


def child_main(spec_text):
    """The child's side: open the copy, render as the synchronous path does, save the arrays."""
    spec = json.loads(spec_text)
    watch = _exit_with_parent(spec["parent"])
    print(TEMP_MARK + bpy.app.tempdir, flush=True)
    try:
        _child_progress(0.0, "Rendering: loading the scene")
        if spec["addon"] in bpy.context.preferences.addons:
            # Enabled from the user's preferences (an installed Blender): its load handlers have
            # nothing to do in a render of a copy (pending server jobs belong to the user's file).
            import addon_utils

            addon_utils.disable(spec["addon"], default_set=False)
        bpy.ops.wm.open_mainfile(filepath=spec["blend"], load_ui=False, use_scripts=spec["scripts"])
        scene = bpy.data.scenes[spec["scene"]]
        if spec.get("frame") is not None:
            scene.frame_set(spec["frame"])
        # Beside an interactive Blender: one core left to its UI, which also comes first.
        scene.render.threads_mode = "FIXED"
        scene.render.threads = max(1, (os.cpu_count() or 2) - 1)
        if hasattr(os, "nice"):
            os.nice(10)
        if spec["kind"] == "scene-z":
            from ...engine.settings import DepthSettings
            from .scene_z import scene_depth

            made = scene_depth(
                scene, DepthSettings(**spec["settings"]), view_layer=spec["view_layer"], progress=_child_progress
            )
            arrays = {"depth": made.depth}
            meta = {
                "near_is_bright": bool(made.near_is_bright),
                "model": made.model,
                "network_size": list(made.network_size),
                "tiles": made.tiles,
                "timings": made.timings,
                "units": made.units.to_metadata() if made.units is not None else None,
            }
        else:
            if spec["kind"] == "node":
                from .node import from_node

                made = from_node(scene, spec["node"], progress=_child_progress)
            else:
                from .picture import from_render

                made = from_render(scene, compositor=spec["kind"] == "compositor", progress=_child_progress)
            arrays = {"rgb": made.rgb}
            meta = {"label": made.label, "name": made.name, "source": made.source}
        partial = spec["result"][: -len(".npz")] + ".partial.npz"
        np.savez(partial, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(partial, spec["result"])  # whole or absent
        print(DONE_MARK, flush=True)
    except FathomError as e:
        print(ERROR_MARK + json.dumps(str(e)), flush=True)
    finally:
        watch()


def _child_progress(fraction, message):
    print(f"{PROGRESS_MARK}{float(fraction):.4f} {message}", flush=True)


def _exit_with_parent(parent):
    """End this child if the Blender that started it goes away (crash, kill) mid-render. Returns
    the function that stops watching: a thread still alive keeps the bpy 4.5 module from exiting."""
    stop = threading.Event()

    def watch():
        while not stop.wait(0.5):
            if os.getppid() != parent:
                os._exit(1)

    thread = threading.Thread(target=watch, daemon=True, name="fathom-parent-watch")
    thread.start()

    def done():
        stop.set()
        thread.join()

    return done
