"""Sidebar panels; ``classes`` is what __init__.py registers."""
from . import sidebar

classes = (
    *sidebar.classes,
)
