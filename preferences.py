"""Add-on preferences: which backend runs, where models live, threads, the depth server's address."""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .bridge.prefs import ONLINE_ACCESS_OFF, default_models_folder, model_store

DEVICES = (
    (
        "AUTO",
        "Automatic",
        "A GPU when the bundled onnxruntime can use one (DirectML on Windows, CoreML on macOS, "
        "CUDA with onnxruntime-gpu on Linux), else the CPU",
    ),
    ("CPU", "CPU", "Always the CPU"),
    ("GPU", "GPU", "The GPU; when it cannot run, the CPU, and the panel says why"),
)
BACKENDS = (
    ("LOCAL", "Local", "Run the depth model on this computer with onnxruntime"),
    ("SERVER", "Server", "Send the picture to a Fathom depth server (uses tokens)"),
    ("SCENE_Z", "Scene Z (exact)", "The render's own Z pass: exact depth of a 3D scene, no AI"),
)


class FATHOM_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend: EnumProperty(name="Backend", items=BACKENDS, default="LOCAL")
    models_dir: StringProperty(
        name="Model Folder",
        subtype="DIR_PATH",
        default="",
        description="Where downloaded models are kept; empty uses the extension's user folder",
    )
    threads: IntProperty(
        name="Threads",
        min=0,
        max=256,
        default=0,
        description="CPU threads for local inference; 0: automatic (all cores but one while the interface is open)",
    )
    device: EnumProperty(name="Device", items=DEVICES, default="AUTO", description="Where local inference runs")
    open_result: BoolProperty(
        name="Open Results in a Window",
        default=False,
        description="When no Image Editor shows the source, open a new window with the finished depth map",
    )
    server_url: StringProperty(
        name="Server URL",
        default="http://127.0.0.1:8000",
        description="Address of the Fathom depth server used by the Server backend",
    )
    api_key: StringProperty(
        name="API Key",
        subtype="PASSWORD",
        default="",
        description="Your key for the depth server; stored in Blender's preferences",
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "backend")
        layout.prop(self, "open_result")
        col = layout.column(heading="Local")
        col.prop(self, "models_dir")
        if not self.models_dir.strip():
            col.label(text=f"Default: {default_models_folder()}", icon="FILE_FOLDER")
        col.prop(self, "threads")
        col.prop(self, "device")
        self._draw_models(layout.box(), context)
        col = layout.column(heading="Server")
        col.prop(self, "server_url")
        col.prop(self, "api_key")
        self._draw_connection(col, context)

    def _draw_connection(self, col, context):
        """The Test Connection button and its last answer (cached: no network in draw)."""
        from .bridge.remote import account

        row = col.row(align=True)
        row.operator("fathom.test_connection", icon="URL")
        row.operator("fathom.get_tokens", icon="FUND")
        if not bpy.app.online_access:
            col.label(text=ONLINE_ACCESS_OFF, icon="ERROR")
        view = account.account.view(self.server_url, self.api_key)
        if account.account.busy():
            col.label(text="Asking the server...", icon="SORTTIME")
        elif view is not None and view.error:
            for number, line in enumerate(_wrap(view.error, 90)):
                col.label(text=line, icon="ERROR" if number == 0 else "BLANK1")
        elif view is not None:
            col.label(text=account.describe(view), icon="CHECKMARK")

    def _draw_models(self, box, context):
        from .bridge.generation import worker
        from .engine.catalog import license_notice
        from .engine.download import human_size
        from .engine.errors import FathomError

        box.label(text="Models", icon="FILE_3D")
        running = worker.current()
        if running is not None:
            row = box.row(align=True)
            fraction, text = running.shown  # the status bar's text, taken at the same tick
            row.progress(factor=fraction, type="BAR", text=text)
            row.operator("fathom.cancel_generation", text="", icon="CANCEL")
        try:
            entries = model_store(context).list_models()
        except FathomError as exc:  # e.g. a broken FATHOM_CATALOG file
            box.label(text=str(exc), icon="ERROR")
            return
        for entry in entries:
            info = entry.info
            row = box.row()
            row.label(text=f"{info.name} ({human_size(info.size)})")
            row.label(text=entry.status.capitalize(), icon="CHECKMARK" if entry.status == "installed" else "BLANK1")
            if entry.status == "installed":
                row.operator("fathom.verify_model", text="Verify").model = info.id
                if not info.is_local:
                    row.operator("fathom.delete_model", text="", icon="TRASH").model = info.id
            elif not info.is_local:
                row.operator("fathom.download_model", text="Resume" if entry.part_bytes else "Download").model = info.id
            if not info.commercial_use:
                box.label(text=license_notice(info), icon="ERROR")


def _wrap(text, width):
    import textwrap

    return textwrap.wrap(text, width) or [""]


classes = (FATHOM_AP_preferences,)
