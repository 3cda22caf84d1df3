"""Add-on preferences: which backend runs, where models live, threads, the depth server's address."""
from pathlib import Path

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from .engine.store import ModelStore

BACKENDS = (
    ("LOCAL", "Local", "Run the depth model on this computer with onnxruntime"),
    ("SERVER", "Server", "Send the picture to a Fathom depth server (uses tokens)"),
    ("SCENE_Z", "Scene Z (exact)", "The render's own Z pass: exact depth of a 3D scene, no AI"),
)


def addon_preferences(context=None):
    """This add-on's preferences (``__package__`` is the extension's module, e.g. bl_ext.user_default.fathom)."""
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def default_models_folder() -> Path:
    """Per-user data folder of the extension: it survives upgrades, unlike the extension's own folder."""
    return Path(bpy.utils.extension_path_user(__package__, path="models", create=True))


def model_store(context=None) -> ModelStore:
    folder = addon_preferences(context).models_dir.strip()
    return ModelStore(bpy.path.abspath(folder) if folder else default_models_folder())


class FATHOM_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend: EnumProperty(name="Backend", items=BACKENDS, default="LOCAL")
    models_dir: StringProperty(
        name="Model Folder", subtype="DIR_PATH", default="",
        description="Where downloaded models are kept; empty uses the extension's user folder")
    threads: IntProperty(
        name="Threads", min=0, max=256, default=0,
        description="CPU threads for local inference; 0 lets onnxruntime choose")
    server_url: StringProperty(
        name="Server URL", default="http://127.0.0.1:8000",
        description="Address of the Fathom depth server used by the Server backend")
    api_key: StringProperty(
        name="API Key", subtype="PASSWORD", default="",
        description="Your key for the depth server; stored in Blender's preferences")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "backend")
        col = layout.column(heading="Local")
        col.prop(self, "models_dir")
        if not self.models_dir.strip():
            col.label(text=f"Default: {default_models_folder()}", icon="FILE_FOLDER")
        col.prop(self, "threads")
        col = layout.column(heading="Server")
        col.prop(self, "server_url")
        col.prop(self, "api_key")


classes = (FATHOM_AP_preferences,)
