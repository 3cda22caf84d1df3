"""Renders for the interactive operator in a separate Blender process, so the UI never waits.

A render started from Python (bpy.ops.render.render) runs on Blender's main thread: the UI is
frozen for the whole render and Esc cannot stop it. The Generate operator therefore renders in a
child Blender instead, driven from its worker thread (bridge.generation.worker):

    child = ChildRender(scene, kind, settings)   main thread: cheap checks, then a copy of the
                                                 file's current state (unsaved changes included,
                                                 the user's .blend untouched); a saved file with
                                                 no changes is opened as it is, not copied
    made = child.run(progress, cancel)           worker thread, no bpy: the child opens the copy
                                                 and runs the same capture code as an in-process
                                                 render; a Capture or a DepthMap comes back

The child (its side is bridge.capture.child_main) runs bridge.capture.picture.from_render or
bridge.capture.scene_z.scene_depth, exactly what the synchronous path calls, and hands the arrays
back in a .npz file in a private temporary folder, so its pixels equal an in-process capture. Its
progress ("sample a of b") comes back on its standard output, a cancel kills it, and the folder
(file copy, result) is always removed.
Background mode, the CLI and scripts keep rendering in-process, synchronously (backends.prepare
without ``offload_render``).

What a saved copy cannot carry: pixels painted into an image and not saved. When an image has
such edits, :func:`child_render` returns None and the caller renders in-process (the UI waits,
but the picture is the one the user sees). Also not carried: simulation results held only in
memory (an unbaked Simulation zone); the child evaluates the frame as `blender -b` would. The
child holds its own copy of the scene in memory while it renders.
"""

import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import asdict

import bpy
import numpy as np

from ...engine.depth import DepthMap
from ...engine.errors import CancelledError
from ...engine.units import DepthUnits
from ..prefs import ADDON
from . import render as render_capture
from .child_main import DONE_MARK, ERROR_MARK, PROGRESS_MARK, TEMP_MARK
from .picture import Capture

KINDS = ("render", "compositor", "scene-z", "node")
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the extension's folder
_CHILD_PACKAGE = "_fathom_render_child"
_POLL_S = 0.1  # how often the worker looks at the cancel flag while the child renders
_EXIT_GRACE_S = 10.0  # a child that wrote its result and does not exit by then is ended


def blender_command(code):
    """The command that runs Python ``code`` in a new background Blender: the blender executable
    of an installed Blender (bpy.app.binary_path), or, with the bpy module (which has no
    executable), this Python importing bpy. The child loads the user's preferences as the
    installed Blender does (Cycles' GPU settings live there)."""
    binary = bpy.app.binary_path
    if binary:
        return [binary, "--background", "--python-exit-code", "3", "--python-expr", code]
    return [sys.executable, "-c", "import bpy\n" + code]


def unsaved_images():
    """Names of images whose pixels were changed and not saved: a file copy would miss the edits."""
    return sorted(
        image.name
        for image in bpy.data.images
        if image.is_dirty and image.users and image.type not in ("RENDER_RESULT", "COMPOSITING")
    )


def child_render(scene, kind, settings=None, *, view_layer=None, node=None, frame=None):
    """A ChildRender of ``scene``, or None when a copy of the file would not render the same
    picture (see :func:`unsaved_images`); the caller then renders in-process."""
    if unsaved_images():
        return None
    return ChildRender(scene, kind, settings, view_layer=view_layer, node=node, frame=frame)


class ChildRender:
    """One render of ``scene`` in a child Blender. ``kind``: 'render', 'compositor', 'scene-z'
    (it needs the DepthSettings to convert the Z pass with) or 'node' (what is wired into the
    Depth Map node named ``node``: bridge.capture.node)."""

    def __init__(self, scene, kind, settings=None, *, view_layer=None, node=None, frame=None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        # What fails cheaply fails here, on the main thread, before anything is written.
        render_capture.active_camera(scene)
        if kind == "compositor":
            render_capture.compositor_output(scene)
        if kind == "scene-z":
            from .scene_z import render_view_layer

            view_layer = render_view_layer(scene, view_layer).name
        self.kind, self.settings, self.scene_name = kind, settings, scene.name
        self.process = None  # the child while it runs (its pid is in the tests' interest)
        self._session_temp = None
        self.folder = tempfile.mkdtemp(prefix="fathom-render-", dir=bpy.app.tempdir or None)
        # Removed after run, on discard, or when this object is forgotten: never left behind.
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.result = os.path.join(self.folder, "result.npz")
        # A node's input always comes from a copy: operators run from scripts can change the tree
        # without marking the file dirty, and the capture must see the tree as it is now.
        if bpy.data.filepath and not bpy.data.is_dirty and kind != "node":
            # Saved as it is: the child opens the user's file itself (read only, never saved), and
            # the UI does not wait for a copy to be written.
            blend = bpy.data.filepath
        else:
            blend = os.path.join(self.folder, "scene.blend")
            self._copy(blend)
        spec = {
            "blend": blend,
            "scene": scene.name,
            "kind": kind,
            "node": node,
            "view_layer": view_layer,
            "result": self.result,
            "parent": os.getpid(),
            "addon": ADDON,
            "settings": asdict(settings) if settings is not None else None,
            "scripts": not bpy.app.autoexec_fail,
            "frame": frame,  # None: the file's current frame
        }  # run the file's scripts only where the user does
        self.command = blender_command(_child_code(spec))

    def _copy(self, blend):
        """A copy of the file as it is now: the user's file, its path and its unsaved state stay as they
        are. Without the file's preview picture: Blender renders it from the camera on the main thread
        (about a second with software OpenGL), and the copy is thrown away after the render."""
        paths = bpy.context.preferences.filepaths
        before = (paths.file_preview_type, bpy.context.preferences.is_dirty)
        try:
            paths.file_preview_type = "NONE"
            bpy.ops.wm.save_as_mainfile(
                filepath=blend, copy=True, check_existing=False, compress=False, relative_remap=True
            )
        except RuntimeError as e:
            self.discard()
            raise render_capture.RenderCaptureError(
                f"Fathom could not copy the scene for rendering in the background: {render_capture._message(e)}"
            ) from None
        finally:  # the user's preference as it was, not marked as changed
            paths.file_preview_type, bpy.context.preferences.is_dirty = before

    def discard(self):
        """Remove the temporary folder (the copy of the file and any result)."""
        self._remove()

    def run(self, progress=None, cancel=None):
        """Render in the child; return a bridge.capture.picture.Capture (render, compositor) or an
        engine.depth.DepthMap (scene-z). Safe on any thread: no bpy. A cancel kills the child and
        raises CancelledError; a failed render raises RenderCaptureError with the child's reason."""
        report = progress or (lambda fraction, message: None)
        report(0.0, "Rendering: starting Blender")
        tail = collections.deque(maxlen=15)  # the child's last lines, for an error message
        error, done_at = None, None
        # The child's temporary files (its capture's, its Blender session's) go inside the folder
        # removed below: a killed child cannot clean up after itself.
        env = dict(os.environ, TMPDIR=self.folder, TEMP=self.folder, TMP=self.folder)
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                cwd=self.folder,
                env=env,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )  # no console window on Windows
            lines = queue.Queue()
            threading.Thread(
                target=_read_lines, args=(self.process.stdout, lines), daemon=True, name="fathom-render-output"
            ).start()
            while True:
                if cancel is not None and cancel():
                    raise CancelledError("The render was cancelled; nothing was written.")
                try:
                    line = lines.get(timeout=_POLL_S)
                except queue.Empty:
                    if done_at is not None and time.monotonic() - done_at > _EXIT_GRACE_S:
                        self.process.kill()  # stuck on its way out; the result is whole
                    continue
                if line is None:  # the child closed its output: it has ended
                    break
                line = line.rstrip("\r\n")
                if line.startswith(PROGRESS_MARK):
                    fraction, _, message = line[len(PROGRESS_MARK) :].partition(" ")
                    report(float(fraction), message)
                elif line.startswith(ERROR_MARK):
                    error = json.loads(line[len(ERROR_MARK) :])
                elif line.startswith(DONE_MARK):
                    done_at = time.monotonic()
                elif line.startswith(TEMP_MARK):
                    self._session_temp = line[len(TEMP_MARK) :]
                elif line.strip():
                    tail.append(line)
            code = self.process.wait()
            if error is not None:
                raise render_capture.RenderCaptureError(error)
            if (code != 0 and done_at is None) or not os.path.isfile(self.result):
                last = "\n".join(tail) or "(no output)"
                raise render_capture.RenderCaptureError(
                    f"The background render of scene {self.scene_name!r} failed (exit code {code}); render it "
                    f"once with F12 to see why. Its last output:\n{last}"
                )
            return self._load()
        finally:
            self._stop()
            self.discard()

    def _stop(self):
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()
            process.stdout.close()
        # Where the user's preferences set Blender's temporary folder, the child's session folder
        # is there, not in ours; a killed child leaves it behind.
        temp = self._session_temp
        if temp and os.path.basename(os.path.normpath(temp)).startswith("blender_") and os.path.isdir(temp):
            shutil.rmtree(temp, ignore_errors=True)

    def _load(self):
        with np.load(self.result, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if self.kind == "scene-z":
                return DepthMap(
                    data["depth"],
                    meta["near_is_bright"],
                    meta["model"],
                    self.settings,
                    tuple(meta["network_size"]),
                    meta["tiles"],
                    meta["timings"],
                    units=DepthUnits.from_metadata(meta.get("units")),
                )
            return Capture(data["rgb"], meta["label"], meta["name"], meta["source"])


def _read_lines(stream, lines):
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):  # closed under us when the child was killed
        pass
    finally:
        lines.put(None)


def _child_code(spec):
    # The extension's modules under a private package name, without running its __init__
    # (registration): the child needs the capture code, not the add-on.
    return (
        f"import importlib, sys, types\n"
        f"package = types.ModuleType({_CHILD_PACKAGE!r})\n"
        f"package.__path__ = [{_ROOT!r}]\n"
        f"sys.modules[{_CHILD_PACKAGE!r}] = package\n"
        f"importlib.import_module({_CHILD_PACKAGE + '.bridge.capture.child_main'!r}).child_main({json.dumps(spec)!r})\n"
    )
