"""One module per user action; ``classes`` is what __init__.py registers."""
from . import generate, results, setups

classes = (
    *generate.classes,
    *results.classes,
    *setups.classes,
)
