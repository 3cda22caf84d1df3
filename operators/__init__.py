"""One module per user action; ``classes`` is what __init__.py registers."""
from . import generate, models, presets, results, setups

classes = (
    *generate.classes,
    *results.classes,
    *models.classes,
    *presets.classes,
    *setups.classes,
)
