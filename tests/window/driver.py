"""The Blender half of the real-window tests: a small library a windowed Blender runs (no pytest here).

    blender FILE.blend --window-geometry 0 0 1600 900 --python tests/window/run_scenario.py -- NAME

A scenario is a generator function ``scenario(d)`` (see scenarios.py), advanced by a
``bpy.app.timers`` timer, so Blender's event loop runs between two steps: clicks, key presses,
redraws and modal operators happen while the scenario waits. A scenario yields
  a number                       wait that many seconds;
  d.until(predicate, timeout)    wait until predicate() is true (the scenario fails after timeout).
Helpers that themselves wait are generators too: ``yield from d.open_sidebar_tab(area, "Depth")``.
What the scenario puts in ``d.results`` is written as JSON to $FATHOM_DRIVER_OUT when it ends
(``error`` holds the traceback if it failed), then Blender quits. Screenshots go to
$FATHOM_DRIVER_ARTIFACTS. Input goes through the X server (xdotool), as a user's would.
"""

import json
import os
import subprocess
import sys
import time
import traceback

import bpy

EXTENSION = "fathom"


class ScenarioFailed(Exception):
    pass


class Until:
    def __init__(self, predicate, timeout, what):
        self.predicate, self.deadline, self.what = predicate, time.perf_counter() + timeout, what


class TickMonitor:
    """The longest gap between the ticks of a 20 ms timer: how long the main thread (Blender's UI)
    could not answer. The time since the last tick when it stops counts as a gap too."""

    INTERVAL = 0.02

    # Editors whose drawing is logged (a draw handler at the end of each region's drawing), so that a
    # long gap says what was drawn in it.
    DRAWN = (
        ("SpaceView3D", "WINDOW", "viewport"),
        ("SpaceView3D", "UI", "sidebar"),
        ("SpaceImageEditor", "WINDOW", "image"),
        ("SpaceNodeEditor", "WINDOW", "nodes"),
        ("SpaceProperties", "WINDOW", "properties"),
        ("SpaceOutliner", "WINDOW", "outliner"),
        ("SpaceDopeSheetEditor", "WINDOW", "timeline"),
    )

    def __init__(self):
        self.gaps, self._last, self._on, self._handlers, self._drawn = [], None, False, [], []

    def start(self):
        self.gaps, self._last, self._on, self._drawn = [], time.perf_counter(), True, []
        self._started = self._last
        for space, region, name in self.DRAWN:
            kind = getattr(bpy.types, space)
            handle = kind.draw_handler_add(self._drawn_now, (name,), region, "POST_PIXEL")
            self._handlers.append((kind, handle, region))
        bpy.app.timers.register(self._tick, first_interval=self.INTERVAL, persistent=True)

    def _drawn_now(self, name):
        self._drawn.append((time.perf_counter(), name))

    def _tick(self):
        if not self._on:
            return None
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now
        return self.INTERVAL

    def stop(self) -> dict:
        self._on = False
        while self._handlers:
            kind, handle, region = self._handlers.pop()
            kind.draw_handler_remove(handle, region)
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        gaps = sorted(self.gaps)
        p95 = gaps[int(0.95 * (len(gaps) - 1))]
        return {
            "longest_gap_ms": round(gaps[-1] * 1000, 1),
            "p95_gap_ms": round(p95 * 1000, 1),
            "ticks": len(gaps),
            "seconds": round(now - self._started, 2),
            # where in the run the longest gap ended, seconds from the start
            "longest_ended_at_s": round(sum(self.gaps[: self.gaps.index(gaps[-1]) + 1]), 2),
            # every gap of LONG_MS or more: [ended at (s from the start), ms, what was drawn in it]
            "long_gaps": self._long_gaps(),
        }

    LONG_MS = 150

    def _long_gaps(self):
        found, at = [], 0.0
        for gap in self.gaps:
            at += gap
            if gap * 1000 >= self.LONG_MS:
                start, end = self._started + at - gap, self._started + at
                drawn = [name for t, name in self._drawn if start <= t <= end]
                found.append([round(at, 2), round(gap * 1000, 1), drawn])
        return found[:60]


class Redrawer:
    """Redraws what the generate operator's modal timer redraws, every ``interval`` seconds (its
    own function), so that an idle window can be measured with the same redraws."""

    def __init__(self, interval=0.1):
        self.interval, self._on = interval, False

    def start(self):
        self._on = True
        bpy.app.timers.register(self._tick, first_interval=self.interval, persistent=True)

    def _tick(self):
        if not self._on:
            return None
        from bl_ext.user_default.fathom.bridge.redraw import redraw  # exactly what the modal timer calls

        redraw(bpy.context.window_manager)
        return self.interval

    def stop(self):
        self._on = False


class Driver:
    def __init__(self, out_path, artifacts):
        self.out_path, self.artifacts = out_path, artifacts
        self.results = {
            "blender": bpy.app.version_string,
            "python": sys.version.split()[0],
            "binary_path": bpy.app.binary_path,
            "screenshots": [],
        }
        self._gen, self._waiting = None, None
        os.makedirs(artifacts, exist_ok=True)

    # -- running a scenario -------------------------------------------------------------------

    def run(self, scenario):
        self._gen = scenario(self)
        bpy.app.timers.register(self._step, first_interval=1.0, persistent=True)

    def until(self, predicate, timeout=60.0, what="a condition"):
        return Until(predicate, timeout, what)

    def _step(self):
        try:
            if self._waiting is not None:
                if not self._waiting.predicate():
                    if time.perf_counter() > self._waiting.deadline:
                        raise ScenarioFailed(f"timed out waiting for {self._waiting.what}")
                    return 0.05
                self._waiting = None
            value = next(self._gen)
        except StopIteration:
            return self._finish(None)
        except Exception:
            self._gen.close()
            return self._finish(traceback.format_exc())
        if isinstance(value, Until):
            self._waiting = value
            return 0.05
        return float(value)

    def _finish(self, error):
        self.results["error"] = error
        if error:
            print(error, file=sys.stderr)
            self.screenshot("failure")
        with open(self.out_path, "w") as f:
            json.dump(self.results, f, indent=1)
        bpy.app.timers.register(self._quit, first_interval=0.2)
        return None

    def _quit(self):
        with bpy.context.temp_override(window=self.window()):
            bpy.ops.wm.quit_blender()

    # -- the window, as the X server sees it ----------------------------------------------------

    def window(self):
        return bpy.context.window_manager.windows[0]

    def area(self, kind):
        found = [a for a in self.window().screen.areas if a.type == kind]
        if not found:
            raise ScenarioFailed(f"no {kind} area in the window")
        return max(found, key=lambda a: a.width * a.height)

    @staticmethod
    def region(area, kind):
        return next(r for r in area.regions if r.type == kind)

    def to_screen(self, region, x, y):
        """Region pixel (x right, y up) -> X screen pixel (y down); the window sits at the screen's corner."""
        window = self.window()
        return int(window.x + region.x + x), int(window.height - (region.y + y) + window.y)

    def xdotool(self, *args):
        subprocess.run(["xdotool", *map(str, args)], check=True, capture_output=True, timeout=10)

    def click(self, region, x, y):
        self.xdotool("mousemove", *self.to_screen(region, x, y), "click", "1")

    def key(self, region, name):
        """Press a key with the pointer over ``region`` (X gives the keyboard to the window under it)."""
        self.xdotool("mousemove", *self.to_screen(region, region.width // 2, region.height // 2), "key", name)

    def screenshot(self, name):
        """The whole X screen (``bpy.ops.screen.screenshot`` is black under Xvfb), as PNG."""
        path = os.path.join(self.artifacts, f"{len(self.results['screenshots']):02d}-{name}.png")
        subprocess.run(["import", "-window", "root", path], check=True, capture_output=True, timeout=30)
        self.results["screenshots"].append(path)
        return path

    def open_sidebar_tab(self, area, category):
        """Open the sidebar (N) of ``area`` and click its tab ``category``, as a user does. Python cannot
        set the tab (Region.active_panel_category is read-only), and the tabs' places depend on the
        labels, fonts and scale: click down the tab strip at the region's outer edge until the
        region says it shows ``category``."""
        space = area.spaces.active
        if not space.show_region_ui:
            space.show_region_ui = True
            yield 0.5
        region = self.region(area, "UI")
        if region.active_panel_category == category:
            return
        scale = bpy.context.preferences.system.ui_scale
        x = region.width - 10 * scale if region.alignment == "RIGHT" else 10 * scale
        for y in range(region.height - int(12 * scale), 0, -int(10 * scale)):
            self.click(region, x, y)
            yield 0.2
            if region.active_panel_category == category:
                self.results.setdefault("tab_clicks", {})[category] = list(self.to_screen(region, x, y))
                return
        raise ScenarioFailed(f"no sidebar tab {category!r} along x={x:.0f} (tabs: {region.active_panel_category!r})")

    def invoke(self, area, operator, **props):
        """Run ``operator`` as a button in ``area``'s sidebar does: INVOKE_DEFAULT, in that context."""
        with bpy.context.temp_override(window=self.window(), area=area, region=self.region(area, "UI")):
            return operator("INVOKE_DEFAULT", **props)

    # -- Fathom, as the user sees it ------------------------------------------------------------

    @staticmethod
    def generating() -> bool:
        """A generation is running: its Cancel button is live (the panel shows the progress bar)."""
        return bpy.ops.fathom.cancel_generation.poll()

    @staticmethod
    def progress():
        """(fraction, text) of the running job, as the progress bar and the status bar show them, or None."""
        name = next((m for m in sys.modules if m.startswith("bl_ext.") and m.endswith("." + EXTENSION)), "")
        worker = sys.modules.get(name + ".bridge.generation.worker") if name else None
        running = worker.current() if worker is not None else None
        return None if running is None else (round(running.shown[0], 3), running.shown[1])

    @staticmethod
    def child_processes():
        """Command lines of this Blender's child processes (a child render shows up here)."""
        me, found = str(os.getpid()), []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = f.read().rsplit(")", 1)[1].split()[1]
                if ppid == me:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        found.append(f.read().decode(errors="replace").split("\0")[:-1])
            except (OSError, IndexError):
                continue
        return found

    @staticmethod
    def compositor_tree(scene):
        """The scene's compositor node tree: ``compositing_node_group`` on 5.x, ``node_tree`` on 4.x."""
        tree = getattr(scene, "compositing_node_group", None)
        return tree if tree is not None else getattr(scene, "node_tree", None)


def main(scenario):
    Driver(os.environ["FATHOM_DRIVER_OUT"], os.environ["FATHOM_DRIVER_ARTIFACTS"]).run(scenario)
