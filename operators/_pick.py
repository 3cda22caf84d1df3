"""Picking a point of the picture with a click in the Image Editor (pick focus, metric depth points)."""

from ..properties import PicturePoint


class PickInImage(PicturePoint):
    """Mixin for an operator with the ``x`` and ``y`` properties of a PicturePoint (0..1): invoked in the Image
    Editor it waits for a click with the eyedropper cursor, sets x, y to the clicked point and runs ``execute``;
    elsewhere it runs ``execute`` with the values it has."""

    pick_prompt = "Click a point of the picture; Esc or right-click cancels"

    def invoke(self, context, event):
        if context.area is None or context.area.type != "IMAGE_EDITOR":
            return self.execute(context)
        context.window.cursor_modal_set("EYEDROPPER")
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(self.pick_prompt)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type in {"ESC", "RIGHTMOUSE"}:
            self._done(context)
            return {"CANCELLED"}
        if event.type == "LEFTMOUSE" and event.value == "PRESS":
            self._done(context)
            # The Image Editor's view space is the image's UV space: 0..1 over the picture.
            u, v = context.region.view2d.region_to_view(event.mouse_region_x, event.mouse_region_y)
            if not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0):
                self.report({"WARNING"}, "Click inside the picture")
                return {"CANCELLED"}
            self.x, self.y = u, v
            return self.execute(context)
        return {"RUNNING_MODAL"}

    def _done(self, context):
        context.window.cursor_modal_restore()
        context.workspace.status_text_set(None)
