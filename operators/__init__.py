"""One module per user action; ``classes`` is what __init__.py registers."""
from . import generate

classes = (
    *generate.classes,
)
