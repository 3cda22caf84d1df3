"""One depth generation as a job: what the operator, the CLI and scripts hand around.

    job.run(progress, cancel)   any thread, no bpy: (render,) estimate and write the result file
    job.finish(context)         main thread: the image and its compositor node
    job.done_message(seconds)   what the user is told

The Server backend's job (bridge.remote.job.RemoteJob) is a subclass: same steps, over the network.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import bpy

from ...engine import depth
from ...engine.errors import CancelledError
from ...engine.settings import DepthSettings
from ...engine.store import ModelStore
from ...engine.units import METADATA_KEY as UNITS_KEY
from ..capture.picture import Capture
from . import nodes, results


@dataclass
class Job:
    capture: Optional[Capture]  # None until run when a child process renders it
    settings: DepthSettings
    model_path: Optional[Path]
    target: results.Target
    scene_name: str
    depth_map: Optional[depth.DepthMap] = None
    path: Optional[Path] = None
    download: Optional[ModelStore] = None  # fetch the model first (interactive, online, not installed)
    render: Optional[object] = None  # a capture.child.ChildRender: render first, in a child Blender
    depth_node: Optional[str] = None  # source NODE: the Depth Map node the result fills
    node_record: Optional[dict] = None  # and what its result depends on (fingerprint, frame)
    in_process: bool = False  # estimate in the inference worker process (interactive: the UI never waits)

    @property
    def reused(self) -> bool:
        """True when an identical earlier result was shown again (the Server backend): no tokens spent."""
        return False

    def run(self, progress=None, cancel=None) -> Path:
        """Estimate (unless prepare already made the map, as Scene Z does) and write the result file.
        Cancelling raises CancelledError and writes nothing."""
        self.render_first(progress, cancel)
        if self.model_path is None and self.download is not None:
            self.model_path = self.download.download(
                self.settings.model, progress=_download_progress(progress), cancel=cancel
            )
        if self.depth_map is None:
            estimate, options = depth.estimate, {}
            if self.in_process:
                from .inference import estimate
            image = self.capture.rgb
            if image is None:  # a file only the worker process decodes (in_process)
                image, options = self.capture.file, {"as_blender": self.capture.as_blender, "name": self.capture.label}
            self.depth_map = estimate(
                image,
                self.settings,
                self.model_path,
                progress=progress,
                cancel=cancel,
                model_name=self.settings.model,
                **options,
            )
        if cancel is not None and cancel():
            raise CancelledError("Depth generation was cancelled; nothing was written.")
        self.path = results.write_result(self.depth_map, self.capture.name, self.target, self.file_metadata())
        return self.path

    def file_metadata(self) -> dict:
        """What the result file records about how it was made."""
        made = self.depth_map
        model = made.model if made is not None else self.settings.model  # 'scene-z' for Scene Z
        metadata = {
            "fathom.model": model,
            "fathom.settings": {**asdict(self.settings), "model": model},
            "fathom.source": self.capture.source,
            "fathom.runtime": self.depth_map.runtime,
        }
        if made is not None and made.units is not None:
            metadata[UNITS_KEY] = made.units.to_metadata()
        return metadata

    def render_first(self, progress=None, cancel=None):
        """Run the render deferred from prepare (in a child Blender), if any: its picture, or the
        depth map itself for Scene Z."""
        if self.render is None:
            return
        made = self.render.run(progress, cancel)
        self.render = None
        if isinstance(made, depth.DepthMap):
            self.depth_map = made
        else:
            self.set_capture(made)

    def set_capture(self, picture: Capture):
        """The picture to work on, once known (the Server backend's job derives its cache key from it)."""
        self.capture = picture

    def shown_picture(self):
        """(source, depth array) a finished job shows as one picture (the panel's thumbnail)."""
        return self.capture.source, self.depth_map.depth

    def finish(self, context):
        """Main thread: load the written file as an image and show it in the scene's compositor."""
        image = results.load_result(self.path, self.depth_map, self.capture.source)
        return image, self.show(context, image)

    def show(self, context, image):
        """The source's Image node in the compositor of the job's scene, now showing ``image``."""
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        source = self.capture.source
        if self.depth_node or source.get("kind") == "node":  # a pending server result fetched later too
            from .node_source import fill

            node = fill(scene, self, image)
            if node is not None:
                return node
        return nodes.place_image_node(scene, image, nodes.source_key(self.capture.source))

    def done_message(self, seconds: float) -> str:
        """What Generate Depth reports when done; it says when a server result was reused (no tokens)."""
        where = bpy.path.relpath(str(self.path)) if bpy.data.filepath else str(self.path)
        if self.reused:
            return (
                f"Depth of {self.capture.label}: an identical depth map from the depth server was reused, no "
                f"tokens spent (Generate Again makes a new one): {where}"
            )
        return f"Depth of {self.capture.label} in {seconds:.1f} s: {where}"


def _download_progress(progress):
    def report(done, total):
        if progress is not None and total:
            progress(done / total, f"Downloading the model: {done / 1e6:.0f} of {total / 1e6:.0f} MB")

    return report
