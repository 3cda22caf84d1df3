"""Depth presets: the scene's Depth settings saved under a name and applied again in one click
(Blender's own preset machinery; files in the user's scripts/presets/fathom/depth/)."""

import bpy
from bl_operators.presets import AddPresetBase

PRESET_SUBDIR = "fathom/depth"


class FATHOM_OT_add_depth_preset(AddPresetBase, bpy.types.Operator):
    """Save the Depth settings as a preset, or remove the active preset"""

    bl_idname = "fathom.add_depth_preset"
    bl_label = "Add Depth Preset"
    preset_menu = "FATHOM_MT_depth_presets"
    preset_subdir = PRESET_SUBDIR
    preset_defines = ["props = bpy.context.scene.fathom"]
    preset_values = [
        "props.model",
        "props.resolution",
        "props.invert",
        "props.post_resize",
        "props.normalization",
        "props.output_format",
        "props.tiling",
        "props.quality",
    ]


classes = (FATHOM_OT_add_depth_preset,)
