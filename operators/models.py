"""Models in the preferences: download (resumable, verified) and verify, with progress and cancel;
delete a downloaded model. Long steps run on the worker thread when clicked, synchronously from
scripts and in background mode."""

import bpy
from bpy.props import StringProperty

from ..bridge.prefs import ONLINE_ACCESS_OFF, model_store
from ..engine.catalog import get_model
from ..engine.download import human_size
from ..engine.errors import FathomError
from ._worker import WorkerModal, poll_idle


class ModelTask:
    """A download or a verification as a worker job (bpy-free run)."""

    def __init__(self, store, model_id, action):
        self.store, self.model_id, self.action = store, model_id, action
        self.name = get_model(model_id).name
        self.path = None

    def run(self, progress=None, cancel=None):
        verb = "Downloading" if self.action == "download" else "Verifying"

        def report(done, total):
            if progress is not None and total:
                progress(done / total, f"{verb} {self.name}: {human_size(done)} of {human_size(total)}")

        if self.action == "download":
            self.path = self.store.download(
                self.model_id, progress=report, cancel=cancel, allow_network=bpy.app.online_access
            )
        else:
            self.path = self.store.verify(self.model_id, progress=report, cancel=cancel)
        return self.path


class _ModelOperator(WorkerModal):
    model: StringProperty(name="Model", description="Model id from the catalogue")
    action = ""

    @classmethod
    def poll(cls, context):
        return poll_idle(cls, "Another download or generation is running")

    def make_job(self, context, interactive):
        return ModelTask(model_store(context), self.model, self.action)

    def worker_done(self, context, task):
        self.report(
            {"INFO"},
            f"{task.name}: {'downloaded and verified' if self.action == 'download' else 'verified'} ({task.path})",
        )
        return {"FINISHED"}


class FATHOM_OT_download_model(_ModelOperator, bpy.types.Operator):
    """Download the model (resumes a partial download) and check its sha256"""

    bl_idname = "fathom.download_model"
    bl_label = "Download Model"
    action = "download"

    @classmethod
    def poll(cls, context):
        if not bpy.app.online_access:
            cls.poll_message_set(ONLINE_ACCESS_OFF)
            return False
        return super().poll(context)


class FATHOM_OT_verify_model(_ModelOperator, bpy.types.Operator):
    """Check the installed model file against the catalogue's sha256"""

    bl_idname = "fathom.verify_model"
    bl_label = "Verify Model"
    action = "verify"


class FATHOM_OT_delete_model(bpy.types.Operator):
    """Delete the downloaded model file (it can be downloaded again)"""

    bl_idname = "fathom.delete_model"
    bl_label = "Delete Model"
    model: StringProperty(name="Model")

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        try:
            removed = model_store(context).delete(self.model)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Deleted {self.model}" if removed else f"{self.model} was not downloaded")
        return {"FINISHED"}


classes = (FATHOM_OT_download_model, FATHOM_OT_verify_model, FATHOM_OT_delete_model)
