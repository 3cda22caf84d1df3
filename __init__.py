"""Fathom: depth maps from images and renders (Depth Anything V2 through onnxruntime).

Registration only; the work lives in operators/, panels/, bridge/ and the bpy-free engine/.
The repository root is this package, so the test runner imports this file outside Blender:
everything that needs bpy is imported inside register()/unregister().
"""

_cli_handle = None


def _classes():
    from . import operators, panels, preferences, properties

    return (*preferences.classes, *properties.classes, *operators.classes, *panels.classes)


def register():
    global _cli_handle
    import bpy

    from . import properties
    from .bridge.cli import main as cli
    from .bridge.remote import notice

    for cls in _classes():
        bpy.utils.register_class(cls)
    properties.register()
    notice.register()  # load_post handler: pending server results noticed on file open
    _cli_handle = bpy.utils.register_cli_command("fathom", cli.main)  # `blender -b file.blend -c fathom ...`


def unregister():
    """Stop what the extension started (a running job, its timers, refreshes, cached sessions),
    then take away what it registered."""
    global _cli_handle
    import bpy

    from . import properties
    from .bridge.generation import worker
    from .bridge.remote import account, notice
    from .engine.session import clear_sessions
    from .operators import _worker

    worker.stop()
    _worker.stop()
    account.unregister()
    notice.unregister()
    clear_sessions()
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    properties.unregister()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
