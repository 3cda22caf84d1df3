"""Normal maps from depth (engine.normals) and the displaced mesh as OBJ or PLY.

Both write under //generated/ (or a chosen folder) and never replace a file. The mesh is exported by
Blender's own exporters with modifiers applied, from the displacement setup's plane or any mesh
object: what is exported is what renders. The user's selection is put back afterwards.
"""

import os
import tempfile
from pathlib import Path

import bpy

from ...engine.encode import ordinary_file_mode
from ...engine.exr import write_exr
from ...engine.normals import normal_map
from ..files import first_free_name
from . import common, displacement

NORMAL_KIND = "normal"
FORMATS = {"OBJ": ".obj", "PLY": ".ply"}


def normals(depth, *, strength=1.0, folder=None):
    """Write the depth image's normal map (OpenGL convention, 0..1) as a float EXR and load it as a
    Non-Color image; re-running for the same depth image updates the same image datablock."""
    depth = common.find_image(depth, "depth image")
    near_is_bright = bool(depth.get("fathom", {}).get("near_is_bright", True))
    rgb = normal_map(common.depth_array(depth), strength, near_is_bright)
    data = write_exr({c: rgb[:, :, i] for i, c in enumerate("RGB")}, pixel_type="half")
    return common.keep_generated(
        NORMAL_KIND,
        depth.name,
        f"{depth.name}_normal",
        ".exr",
        data,
        non_color=True,
        name=f"{depth.name} normal",
        folder=folder,
    )


def export_mesh(obj=None, fmt="OBJ", *, path=None, folder=None) -> Path:
    """Export ``obj`` (default: the displacement setup's plane) with its modifiers applied."""
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise common.SetupError(f"Unknown mesh format {fmt!r}: use OBJ or PLY.")
    obj = obj if obj is not None else displacement.find_object()
    if isinstance(obj, str):
        obj = bpy.data.objects.get(obj)
    if obj is None or obj.type != "MESH":
        raise common.SetupError("Nothing to export: build the Displacement setup first, or name a mesh object.")
    suffix = FORMATS[fmt]
    if path:
        target = Path(bpy.path.abspath(str(path)))
        if target.suffix.lower() != suffix:
            raise common.SetupError(f"{target.name} does not end in {suffix}: name a {fmt} file.")
        if target.exists():
            raise common.SetupError(f"{target} already exists and Fathom never overwrites files: choose another name.")
    else:
        folder = Path(bpy.path.abspath(str(folder))) if folder else common.results.generated_folder()
        target = None
    out_dir = target.parent if target else folder
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".fathom-export-", suffix=suffix)
    os.close(fd)
    try:
        _export(obj, fmt, tmp)
        os.chmod(tmp, ordinary_file_mode())  # mkstemp makes it private; exports are ordinary files
        if target is not None:
            return _link(tmp, target)
        stem = common.results.safe_stem(obj.name)
        done = first_free_name(out_dir, stem, suffix, lambda candidate: _link(tmp, candidate))
        if done is not None:
            return done
        raise common.SetupError(f"{out_dir} holds too many {stem} exports: move some away.")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link(tmp, target: Path) -> Path:
    """Put the finished file in place without ever replacing one that appeared meanwhile."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system
        if target.exists():
            raise FileExistsError(target) from None
        os.replace(tmp, target)
    return target


def _export(obj, fmt, filepath):
    view_layer = bpy.context.view_layer
    selected = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active
    try:
        for o in selected:
            o.select_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        # The selected object with its modifiers applied, UVs and normals: the same options in both exporters.
        options = {
            "filepath": filepath,
            "export_selected_objects": True,
            "apply_modifiers": True,
            "export_uv": True,
            "export_normals": True,
        }
        if fmt == "OBJ":
            result = bpy.ops.wm.obj_export(**options, export_materials=False)
        else:
            result = bpy.ops.wm.ply_export(**options, ascii_format=False)
    finally:
        obj.select_set(False)
        for o in selected:
            o.select_set(True)
        view_layer.objects.active = active
    if "FINISHED" not in result:
        raise common.SetupError(f"Blender's {fmt} exporter did not finish: see the console for why.")
