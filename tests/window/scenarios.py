"""What the real-window tests do in Blender, as a user would (driven by driver.py; see its docstring).

Each scenario reads its arguments from $FATHOM_SCENARIO_ARGS (JSON) and reports in ``d.results``;
the tests (test_*.py) judge the results.
"""

import json
import os
import time

import bpy


def _args():
    return json.loads(os.environ.get("FATHOM_SCENARIO_ARGS", "{}"))


def _choose_source(source):
    """The Depth panel's source, as the user picks it: Image (the file's "Photo") or Render."""
    props = bpy.context.scene.fathom
    props.source = source
    if source == "IMAGE":
        props.image = bpy.data.images["Photo"]


def _generated_files():
    folder = bpy.path.abspath("//generated")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _describe_result(d, image_names_before):
    """The new depth image(s): file, colour space, and the compositor nodes that show them."""
    found = []
    tree = d.compositor_tree(bpy.context.scene)
    for image in bpy.data.images:
        if image.name in image_names_before:
            continue
        path = bpy.path.abspath(image.filepath)
        found.append(
            {
                "name": image.name,
                "colorspace": image.colorspace_settings.name,
                "file": path,
                "file_exists": os.path.isfile(path),
                "size": list(image.size),
                "nodes": [n.name for n in (tree.nodes if tree else ()) if getattr(n, "image", None) == image],
            }
        )
    return found


def generate_from_sidebar(d):
    """Depth tab clicked, Generate Depth pressed from the sidebar, the progress bar watched, the result
    checked; then a second run cancelled with Esc. Screenshots before, during and after."""
    _choose_source(_args().get("source", "IMAGE"))
    view = d.area("VIEW_3D")
    yield 1.0
    yield from d.open_sidebar_tab(view, "Depth")
    yield 0.5
    d.screenshot("before")
    before = set(bpy.data.images.keys())
    d.results["poll_before"] = bpy.ops.fathom.generate_depth.poll()
    d.results["invoke"] = sorted(d.invoke(view, bpy.ops.fathom.generate_depth))
    samples, shot_during = [], False
    while d.generating():
        samples.append(d.progress())
        if not shot_during and len(samples) >= 5:
            d.screenshot("during")
            shot_during = True
        yield 0.1
    d.results["progress"] = [s for i, s in enumerate(samples) if i == 0 or s != samples[i - 1]]
    d.results["running_samples"] = len(samples)
    yield 0.5
    d.screenshot("after")
    d.results["result"] = _describe_result(d, before)
    d.results["generated"] = _generated_files()

    # The same again, stopped with Esc over the viewport while it runs.
    before = set(bpy.data.images.keys())
    d.invoke(view, bpy.ops.fathom.generate_depth)
    yield d.until(d.generating, 10, "the second generation to start")
    yield 0.5
    d.screenshot("cancelling")
    d.key(d.region(view, "WINDOW"), "Escape")
    asked = time.perf_counter()
    yield d.until(lambda: not d.generating(), 300, "Esc to stop the generation")
    d.results["cancel"] = {
        "seconds": round(time.perf_counter() - asked, 2),
        "new_images": [r["name"] for r in _describe_result(d, before)],
        "generated": _generated_files(),
        "poll_after": bpy.ops.fathom.generate_depth.poll(),
    }
    yield 0.3
    d.screenshot("cancelled")


def main_thread(d):
    """The longest gap between 20 ms timer ticks: the window idle (redrawn as often as a running
    generation redraws it) against the same window while a generation from the sidebar runs."""
    from driver import Redrawer, TickMonitor

    args = _args()
    _choose_source(args["source"])
    view = d.area("VIEW_3D")
    yield 1.0
    yield from d.open_sidebar_tab(view, "Depth")
    yield 1.0
    monitor, redrawer = TickMonitor(), Redrawer(0.1)
    redrawer.start()
    monitor.start()
    yield args.get("idle_s", 5.0)
    d.results["idle"] = monitor.stop()
    redrawer.stop()
    yield 0.5

    before = set(bpy.data.images.keys())
    monitor.start()
    d.results["invoke"] = sorted(d.invoke(view, bpy.ops.fathom.generate_depth))
    children, polls = [], 0
    while d.generating():
        polls += 1
        if polls % 10 == 0:  # now and then: is a child Blender rendering?
            children += [c for c in d.child_processes() if c not in children]
        yield 0.05
    d.results["during"] = monitor.stop()
    d.results["children"] = children
    d.results["result"] = _describe_result(d, before)


def depth_map_node(d):
    """The Depth Map node in the Compositor: Render Layers -> Blur -> Depth Map -> Composite (the node
    added with the Add menu's operator), Generate pressed in the node's box of the Depth tab, the
    result on the node; then the Blur changed and the node's state turns stale. Screenshots."""
    import sys

    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    from scripts.sample_scene import set_blur_size

    name = next(m for m in sys.modules if m.startswith("bl_ext.") and m.endswith(".fathom"))
    node_group = sys.modules[name + ".bridge.node_group"]
    nodes = sys.modules[name + ".bridge.generation.nodes"]
    scene = bpy.context.scene
    area = d.area("VIEW_3D")
    area.ui_type = "CompositorNodeTree"
    yield 0.5
    tree = nodes.compositor_tree(scene, create=True)
    layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    output = next(n for n in tree.nodes if n.bl_idname in ("CompositorNodeComposite", "NodeGroupOutput"))
    blur = tree.nodes.new("CompositorNodeBlur")

    set_blur_size(blur, 4)
    window_region = d.region(area, "WINDOW")
    with bpy.context.temp_override(window=d.window(), area=area, region=window_region):
        d.results["add"] = sorted(bpy.ops.fathom.add_depth_map_node())
    node = tree.nodes.active
    layers.location, blur.location, node.location, output.location = (-520, 0), (-220, 0), (20, 0), (300, 0)
    tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
    tree.links.new(blur.outputs["Image"], node.inputs["Image"])
    tree.links.new(node.outputs["Depth"], output.inputs[0])
    yield 0.3
    with bpy.context.temp_override(window=d.window(), area=area, region=window_region):
        bpy.ops.node.view_all()
    yield from d.open_sidebar_tab(area, "Depth")
    settings = scene.fathom.depth_settings()
    d.results["state_before"] = node_group.state(node, settings, scene.frame_current)[0]
    yield 0.5
    d.screenshot("node-before")
    d.results["invoke"] = sorted(d.invoke(area, bpy.ops.fathom.generate_node_depth, node=node.name))
    samples = 0
    while d.generating():
        samples += 1
        yield 0.1
    d.results["running_samples"] = samples
    d.results["children"] = d.child_processes()
    yield 1.0
    image = node_group.result_image(node)
    state, record = node_group.state(node, settings, scene.frame_current)
    d.results["after"] = {
        "state": state,
        "record": record,
        "image": image.filepath if image else None,
        "size": list(image.size) if image else None,
        "files": _generated_files(),
        "links": sorted([link.from_node.name, link.to_node.name] for link in tree.links),
    }
    with bpy.context.temp_override(window=d.window(), area=area, region=window_region):
        bpy.ops.node.view_all()
    yield 0.8
    d.screenshot("node-after")
    set_blur_size(blur, 10)
    d.results["state_stale"] = node_group.state(node, settings, scene.frame_current)[0]
    area.tag_redraw()
    yield 0.8
    d.screenshot("node-stale")
