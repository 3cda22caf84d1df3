"""One module per user action; ``classes`` is what __init__.py registers."""
from . import generate, results

classes = (
    *generate.classes,
    *results.classes,
)
