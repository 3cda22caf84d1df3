"""Source NODE: a generation from what is wired into a Depth Map node (bridge.node_group).

    attach(context, job, name)   prepare, main thread: the node, the fingerprint of its upstream
                                 subtree, and a child Blender that captures its input
    fill(scene, job, image)      finish, main thread: the node carries the result and its record

The capture always happens in a child Blender on a copy of the file (bridge.capture.node): the
copy is re-wired, the user's tree never is. Synchronous callers (scripts, the CLI) wait for the
child in Job.run; the button runs it on the worker thread, so the UI never waits.
"""

import time

from .. import node_group
from ..capture import child


def attach(context, job, name=None):
    scene = context.scene
    node = node_group.find(scene, name)
    frame = scene.frame_current
    record = {
        "fingerprint": node_group.fingerprint(node, job.settings, frame),
        "settings": node_group.settings_fingerprint(job.settings),
        "frame": frame,
    }
    unsaved = child.unsaved_images()
    if unsaved:
        raise node_group.NodeSourceError(
            f"Save the edited image(s) {', '.join(unsaved)} first (Image > Save): the Depth Map node's "
            "input is captured from a copy of the file, which would miss unsaved pixels."
        )
    job.render = child.ChildRender(scene, "node", job.settings, node=node.name)
    job.depth_node, job.node_record = node.name, record
    return job


def fill(scene, job, image):
    """The Depth Map node now carries ``image``; None when the node is gone (deleted or renamed while
    it generated, or before a pending server result was fetched): the caller shows it elsewhere."""
    name = job.depth_node or job.capture.source.get("node")
    try:
        node = node_group.find(scene, name) if name else None
    except node_group.NodeSourceError:
        node = None
    if node is None:
        return None
    height, width = job.depth_map.depth.shape[:2]
    record = dict(
        job.node_record or {},  # none for a fetched pending result: its state then says stale
        model=job.depth_map.model,
        resolution=job.settings.resolution,
        size=[width, height],
        made=time.time(),
        file=image.filepath,
        image=image.name,
    )
    # Relative depth has no distances; a result that has them (metric) also fills Distance.
    return node_group.fill(node, image, record, distances=bool(getattr(job.depth_map, "metric", False)))
