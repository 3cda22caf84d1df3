"""Redraw the editors that show Fathom (the Depth tab, the preferences, the status bar).

Progress redraws only the sidebars (where the Depth panel is) and the preferences, not the
editors' main regions: with software OpenGL a full 3D Viewport redraw costs 100-170 ms, and the
operator's progress ticks ten times a second. ``full`` also redraws the Image and Node Editors
themselves (a result just shown there or added to the compositor); the 3D Viewport shows no result."""

import bpy

AREAS = {"VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR", "PREFERENCES", "STATUSBAR"}


def redraw(window_manager=None, full=False):
    wm = window_manager or bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type not in AREAS:
                continue
            if (full and area.type != "VIEW_3D") or area.type == "PREFERENCES":
                area.tag_redraw()
                continue
            for region in area.regions:
                if region.type == "UI":
                    region.tag_redraw()
