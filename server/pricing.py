"""What a depth map costs: the model's base price times the factor of the smallest resolution
tier that covers the requested resolutionLowerLimit (bigger maps take longer to compute)."""


def _tiers(settings):
    return sorted((int(limit), int(factor)) for limit, factor in settings.resolution_tiers.items())


def model_names(settings, version3: bool = False) -> dict:
    return settings.models_v3 if version3 else settings.models


def cost(settings, model: str, resolution: int) -> int:
    base = int(settings.prices.get(model, 1))
    for limit, factor in _tiers(settings):
        if resolution <= limit:
            return base * factor
    return base * _tiers(settings)[-1][1]


def price_list(settings) -> dict:
    def family(models):
        return [
            {
                "model": name,
                "catalogueId": cid,
                "tokens": [
                    {"resolutionUpTo": limit, "tokens": cost(settings, name, limit)} for limit, _ in _tiers(settings)
                ],
            }
            for name, cid in models.items()
        ]

    return {
        "currency": "tokens",
        "models": family(settings.models),
        "modelsVersion3": family(settings.models_v3),
        "defaultModel": settings.default_model,
        "topUpUrl": settings.top_up_url or None,
    }
