"""What many Fathom operators do alike: refuse in poll() with a reason, report an outcome, name a datablock."""

from bpy.props import StringProperty

from ..engine.errors import FathomError


def refuse(cls, message: str) -> bool:
    """For poll(): False, with ``message`` shown on the greyed-out button."""
    cls.poll_message_set(message)
    return False


def reported(operator, work) -> set:
    """Run ``work()``: its message as an INFO report and FINISHED, or a FathomError as an ERROR report
    and CANCELLED (nothing raises out of an operator)."""
    try:
        message = work()
    except FathomError as exc:
        operator.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    operator.report({"INFO"}, message)
    return {"FINISHED"}


def name_property(name: str, description: str, **options):
    """An optional name (of an image, an object, a file) that scripts pass; empty: the operator's default.
    Not remembered between runs (SKIP_SAVE): a name from the last run would override the panel's choice."""
    return StringProperty(name=name, default="", options={"SKIP_SAVE"}, description=description, **options)
