"""One module per user action; ``classes`` is what __init__.py registers."""
from . import generate, models, results, setups

classes = (
    *generate.classes,
    *results.classes,
    *models.classes,
    *setups.classes,
)
