"""Redraw the editors that show Fathom (the Depth tab, the preferences, the status bar)."""

import bpy

AREAS = {"VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR", "PREFERENCES", "STATUSBAR"}


def redraw(window_manager=None):
    wm = window_manager or bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type in AREAS:
                area.tag_redraw()
