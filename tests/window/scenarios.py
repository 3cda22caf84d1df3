"""What the real-window tests do in Blender, as a user would (driven by driver.py; see its docstring).

Each scenario reads its arguments from $FATHOM_SCENARIO_ARGS (JSON) and reports in ``d.results``;
the tests (test_*.py) judge the results.
"""

import json
import os
import struct
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
    # An Image Editor showing the source, as a user looking at the photo has: it must switch to the result.
    editor = next(a for a in d.window().screen.areas if a.type not in ("VIEW_3D", "PROPERTIES", "OUTLINER"))
    editor.type = "IMAGE_EDITOR"
    editor.spaces.active.image = bpy.data.images["Photo"]
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
    shown = bpy.context.scene.fathom.result
    d.results["shown"] = {
        "editor": editor.spaces.active.image.name if editor.spaces.active.image else None,
        "panel": shown.name if shown else None,
        "thumbnail": bool(shown and shown.preview and shown.preview.icon_id),
        "thumbnail_size": list(shown.preview.image_size) if shown and shown.preview else None,
    }

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

    # Ctrl+Z takes the whole result back at once (the finish is one undo step), Shift+Ctrl+Z brings it back.
    def state():
        shown = bpy.context.scene.fathom.result
        tree = d.compositor_tree(bpy.context.scene)
        nodes = [n.name for n in (tree.nodes if tree else ()) if getattr(n, "image", None) is not None]
        return {
            "images": sorted(i.name for i in bpy.data.images if "fathom" in i.keys()),
            "nodes": nodes,
            "panel": shown.name if shown else None,
        }

    d.results["undo"] = {"before": state()}
    for key, step in (("ctrl+z", "undone"), ("ctrl+shift+z", "redone")):
        d.key(d.region(view, "WINDOW"), key)
        yield 0.5
        d.results["undo"][step] = state()


def _write_grey_bmp(path, width, height):
    """A mid-grey 24-bit BMP (written without bpy, so the file's data does not change)."""
    row = bytes([128, 128, 128] * width) + bytes(-3 * width % 4)
    header = b"BM" + struct.pack("<IHHI", 54 + len(row) * height, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(row) * height, 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + row * height)
    return path


def _add_image_node_by_hand(d, path):
    """What a finished generation changes in the file, done with plain bpy as a user could: an image
    loaded from ``path`` (Non-Color) and shown in an Image node of the scene's compositor."""
    image = bpy.data.images.load(path, check_existing=False)
    image.colorspace_settings.name = "Non-Color"
    scene = bpy.context.scene
    tree = d.compositor_tree(scene)
    if tree is None and hasattr(scene, "compositing_node_group"):  # Blender 5.x: what its New button makes
        tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
        scene.compositing_node_group = tree
    elif tree is None:  # Blender 4.x
        scene.use_nodes = True
        tree = scene.node_tree
    tree.nodes.new("CompositorNodeImage").image = image


def main_thread(d):
    """The longest gap between 20 ms timer ticks: the window idle, redrawn as often as a running
    generation redraws it; then the same while the file is changed by hand as a finished generation
    changes it (an image loaded, an Image node in the compositor), which Blender redraws its editors
    for (with software OpenGL the 3D Viewport's anti-aliasing redraws it several times, 200-450 ms
    each), measured before and after; against the same window while a generation from the sidebar
    runs, until its result has been drawn."""
    from driver import Redrawer, TickMonitor

    args = _args()
    _choose_source(args["source"])
    view = d.area("VIEW_3D")
    probe = _write_grey_bmp(os.path.join(os.environ["FATHOM_DRIVER_ARTIFACTS"], "idle-probe.bmp"), 640, 360)
    yield 1.0
    yield from d.open_sidebar_tab(view, "Depth")
    yield 1.0
    monitor, redrawer = TickMonitor(), Redrawer(0.1)
    redrawer.start()
    monitor.start()
    yield args.get("idle_s", 5.0)
    d.results["idle"] = monitor.stop()
    monitor.start()
    _add_image_node_by_hand(d, probe)
    yield args.get("settle_s", 4.0)
    d.results["idle_edit"] = monitor.stop()
    redrawer.stop()
    yield 0.5

    if args.get("unsaved"):  # an edit (an undo step) leaves the file with unsaved changes
        with bpy.context.temp_override(window=d.window()):
            bpy.ops.ed.undo_push(message="An edit")
        d.results["unsaved"] = bpy.data.is_dirty
        yield 1.0
    before = set(bpy.data.images.keys())
    monitor.start()
    clicked = time.perf_counter()
    d.results["invoke"] = sorted(d.invoke(view, bpy.ops.fathom.generate_depth))
    d.results["invoke_ms"] = round((time.perf_counter() - clicked) * 1000, 1)  # recorded, not asserted
    children, polls = [], 0
    while d.generating():
        polls += 1
        if polls % 10 == 0:  # now and then: is a child Blender rendering?
            children += [c for c in d.child_processes() if c not in children]
        yield 0.05
    d.results["done_at_s"] = round(time.perf_counter() - clicked, 2)  # when the operator had finished
    yield args.get("settle_s", 4.0)  # the result drawn: the panel, the viewport's redraws
    d.results["during"] = monitor.stop()
    d.results["finish_ms"] = _fathom("bridge.generation.worker").last_finish_ms()
    d.results["children"] = children
    d.results["result"] = _describe_result(d, before)
    # The same change by hand once more: the machine's load may have moved meanwhile.
    redrawer.start()
    monitor.start()
    _add_image_node_by_hand(d, probe)
    yield args.get("settle_s", 4.0)
    d.results["idle_edit_after"] = monitor.stop()
    redrawer.stop()


# -- the depth server (issue 17): a real server on 127.0.0.1 (scripts/with_depth_server.py) --------


def _fathom(name=""):
    """A module of the installed extension (bl_ext.<repo>.fathom[.name])."""
    import importlib
    import sys

    top = next(m for m in sys.modules if m.startswith("bl_ext.") and m.endswith(".fathom"))
    return importlib.import_module(f"{top}.{name}" if name else top)


def _use_server(url, key):
    """The Server backend with this server and key, as the artist sets it in the preferences; what
    to put back afterwards (the profile is shared by the tier's tests and saved on quit)."""
    prefs = bpy.context.preferences.addons[_fathom().__name__].preferences
    system = bpy.context.preferences.system
    before = (prefs.backend, prefs.server_url, prefs.api_key, system.use_online_access)
    system.use_online_access = True
    prefs.backend, prefs.server_url, prefs.api_key = "SERVER", url, key

    def restore():
        prefs.backend, prefs.server_url, prefs.api_key, system.use_online_access = before

    return restore


def _info_log(d):
    """The Info log's lines, newest last, as the artist reads them (an Info editor in the timeline's place)."""
    area = min(d.window().screen.areas, key=lambda a: a.height * 1000 + a.y)  # the lowest, smallest: timeline
    old = area.type
    area.type = "INFO"
    yield 0.5
    region = d.region(area, "WINDOW")
    with bpy.context.temp_override(window=d.window(), area=area, region=region):
        bpy.ops.info.select_all(action="SELECT")
        bpy.ops.info.report_copy()
    d.screenshot("info-log")
    lines = bpy.context.window_manager.clipboard.splitlines()
    area.type = old
    return lines


def pending_popup_fetch(d):
    """The file opened with a paid job still queued on the server: the "Fathom: pending results"
    popup (shown by the load handler) is answered with the keyboard, Down then Return, as an
    artist picks Fetch Pending Results in it. The main thread's longest stall is measured idle
    (the popup open, same redraw rate), then while the fetch follows the queued job; Esc stops
    following (the job stays pending). What the status bar and the Info log then say is kept."""
    from driver import Redrawer, TickMonitor

    args = _args()
    restore = _use_server(args["server"], args["key"])
    try:
        pending = _fathom("bridge.remote.pending")
        d.results["pending_before"] = len(pending.entries())
        yield 0.5
        d.screenshot("popup")
        monitor, redrawer = TickMonitor(), Redrawer(0.1)
        redrawer.start()
        monitor.start()
        yield args.get("idle_s", 5.0)
        d.results["idle"] = monitor.stop()

        monitor.start()
        d.xdotool("key", "Down", "Return")  # the pointer stays on the popup, which has one button
        asked = time.perf_counter()
        while not d.generating() and time.perf_counter() - asked < 10:
            yield 0.05
        waited_for_worker = time.perf_counter() - asked
        d.results["on_worker"] = d.generating()
        d.results["seconds_to_worker"] = round(waited_for_worker, 2)
        samples = []
        while d.generating() and time.perf_counter() - asked < args.get("fetch_s", 6.0):
            samples.append(d.progress())
            yield 0.1
        d.results["progress"] = [s for i, s in enumerate(samples) if i == 0 or s != samples[i - 1]]
        d.results["during"] = monitor.stop()  # before the screenshot, which blocks this thread itself
        redrawer.stop()
        d.results["fetching"] = d.generating()
        if d.generating():
            d.screenshot("fetching")
            d.key(d.region(d.area("VIEW_3D"), "WINDOW"), "Escape")
            yield d.until(lambda: not d.generating(), 30, "Esc to stop following the job")
        d.results["pending_after"] = len(pending.entries())
        yield 0.5
        d.screenshot("after")
        d.results["info_log"] = yield from _info_log(d)
    finally:
        restore()


def sidebar_server_note(d):
    """The Depth tab with the Server backend and an empty balance, at the sidebar's default width: the
    note under the button, as drawn (wrapped lines) and as one label would need it."""
    import blf

    args = _args()
    restore = _use_server(args["server"], args["key"])
    try:
        _choose_source("IMAGE")
        view = d.area("VIEW_3D")
        yield 1.0
        yield from d.open_sidebar_tab(view, "Depth")
        account = _fathom("bridge.remote.account")
        yield d.until(lambda: account.account.view(args["server"], args["key"]) is not None, 30, "the balance")
        yield 1.0
        d.screenshot("sidebar-note")
        sidebar = _fathom("panels.sidebar")
        region = d.region(view, "UI")
        with bpy.context.temp_override(window=d.window(), area=view, region=region):
            note = account.generate_button(bpy.context)["note"]
            width, font = sidebar.label_room(bpy.context)
            lines = sidebar.wrap_lines(note, width, font)
        blf.size(0, font)
        d.results.update(
            {
                "region_width": region.width,
                "note": note,
                "room_px": width,
                "note_px": blf.dimensions(0, note)[0],
                "lines": lines,
                "lines_px": [blf.dimensions(0, line)[0] for line in lines],
                "button": account.generate_button(bpy.context)["text"],
            }
        )
    finally:
        restore()


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
