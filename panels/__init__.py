"""Sidebar panels; ``classes`` is what __init__.py registers."""

from . import setups, sidebar

classes = (
    *sidebar.classes,
    *setups.classes,
)
