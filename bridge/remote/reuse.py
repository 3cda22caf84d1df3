"""Earlier server results in this file, so an identical generation (same picture, settings and
server) shows them again instead of spending tokens."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import bpy

from ..generation.results import IMAGE_KEY
from .pending import REMOTE_KEY


@dataclass(frozen=True)
class Cached:
    """An earlier server result in this file: ``path`` when its file is there in the asked format
    (shown again as is), else None and only its server ``job`` is of use (downloaded again, free)."""

    image: str
    job: str
    path: Optional[Path]
    model: str
    near_is_bright: bool


def cached_results(server: str, output_format: str) -> dict:
    """Main thread: cache key -> Cached for the earlier results of ``server`` in this file, a
    snapshot the job consults once its picture is known (after a render deferred to the worker)."""
    found = {}
    for image in bpy.data.images:
        meta = image.get(IMAGE_KEY)
        info = meta.get(REMOTE_KEY) if meta is not None else None
        if info is None or not info.get("cache_key") or info.get("server") != server:
            continue
        path = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
        usable = meta.get("settings", {}).get("output_format") == output_format and path is not None and path.is_file()
        key = info["cache_key"]
        if key not in found or (usable and found[key].path is None):
            found[key] = Cached(
                image.name,
                info.get("job"),
                path if usable else None,
                meta.get("model", ""),
                bool(meta.get("near_is_bright", True)),
            )
    return found
