"""Sidebar panels; ``classes`` is what __init__.py registers."""

from . import node, setups, sidebar

classes = (
    *sidebar.classes,
    *setups.classes,
    *node.classes,
)
