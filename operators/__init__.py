"""One module per user action; ``classes`` is what __init__.py registers."""

from . import generate, metric, models, presets, remote, results, setups

classes = (
    *generate.classes,
    *results.classes,
    *models.classes,
    *presets.classes,
    *setups.classes,
    *metric.classes,
    *remote.classes,
)
