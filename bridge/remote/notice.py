"""Pending server jobs noticed when a file is opened: a load_post handler says so and offers
Fetch Pending Results (the Depth panel keeps a notice)."""

import bpy

from .messages import pending_count
from .pending import entries, merge_journal


@bpy.app.handlers.persistent
def on_load(_filepath=None):
    """load_post: count the pending jobs of the opened file, say so, and offer to fetch them."""
    merge_journal()
    found = entries()
    if not found:
        return
    print(
        f"Fathom: {pending_count(len(found))}; fetch {'it' if len(found) == 1 else 'them'} with Fetch Pending "
        "Results in the Depth panel (headless: `fathom pending fetch`)."
    )
    if not bpy.app.background:
        bpy.app.timers.register(_offer, first_interval=0.5)


def _offer():
    count = len(entries())
    if not count:
        return None

    def draw(menu, _context):
        menu.layout.label(text=pending_count(count)[:1].upper() + pending_count(count)[1:] + ".")
        # A popup's buttons execute by default: invoke, so the fetch runs on the worker (progress, Esc).
        menu.layout.operator_context = "INVOKE_DEFAULT"
        menu.layout.operator("fathom.fetch_pending", icon="IMPORT")

    wm = bpy.context.window_manager
    if wm is None or not wm.windows:
        return None  # no window to show it in: the Depth panel's notice remains
    with bpy.context.temp_override(window=wm.windows[0]):  # timers run without a window in context
        wm.popup_menu(draw, title="Fathom: pending results", icon="INFO")
    return None


def register():
    if on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(on_load)


def unregister():
    if on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(on_load)
    if bpy.app.timers.is_registered(_offer):
        bpy.app.timers.unregister(_offer)
