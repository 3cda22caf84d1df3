"""What a depth map's values mean: distances, inverse distances, or relative depth only.

Every result carries a :class:`DepthUnits`, in its file's metadata (key ``fathom.units``, JSON) and,
inside Blender, in the image's ``fathom`` custom property (key ``units``). It reads a stored value v
back in three steps:

    u = flip - v            when ``flip`` is set (inverted maps: near = dark), else u = v
    x = offset + span * u ** power
    quantity 'distance':          distance = x                (Scene Z in 'raw')
    quantity 'inverse-distance':  distance = 1 / x           (Scene Z in 'standard'/'v2-style', metric fits)
    quantity 'relative':          x is the network's affine-invariant inverse depth (disparity):
                                  larger = nearer, scale and shift unknown, so no distances

Distances are in scene units along the camera's axis (planar depth, as Blender's Z pass).
'v2-style' maps are clipped at their 1st and 99th percentile (``clipped``): values at 0 or 1 are
bounds there, not exact. ``near`` and ``far`` are the nearest and farthest distances of a surface
in the map (far excludes empty background, which is infinitely far), for reports and defaults.

    units = DepthUnits.from_metadata(image_or_file_metadata)   # None when a result predates units
    units.has_distances                                        # False for a network's relative map
    distances(values, units)                                   # float64 distances, inf where infinitely far
"""

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import InvalidSettingsError

METADATA_KEY = "fathom.units"
QUANTITIES = ("distance", "inverse-distance", "relative")
UNIT = "scene units"


@dataclass(frozen=True)
class DepthUnits:
    quantity: str  # one of QUANTITIES
    source: str  # 'scene-z', 'metric-fit' or the model's name
    offset: float = 0.0
    span: float = 1.0
    power: float = 1.0
    flip: float | None = None
    clipped: bool = False
    near: float | None = None  # nearest surface in the map (scene units), when known
    far: float | None = None  # farthest surface in the map (scene units), when known
    unit: str = UNIT
    fit: dict | None = None  # metric fits: what it was fitted to and how well (engine.metric)

    def __post_init__(self):
        if self.quantity not in QUANTITIES:
            raise InvalidSettingsError(f"Unknown depth quantity {self.quantity!r}: use one of {', '.join(QUANTITIES)}.")

    @property
    def has_distances(self) -> bool:
        return self.quantity != "relative"

    def decode(self, values) -> np.ndarray:
        """The quantity x (see the module's notes) of stored values, float64."""
        u = np.asarray(values, np.float64)
        if self.flip is not None:
            u = self.flip - u
        if self.power != 1.0:
            u = np.maximum(u, 0.0) ** self.power
        return self.offset + self.span * u

    def describe(self) -> str:
        """One line for reports: what the values are."""
        if not self.has_distances:
            return f"relative depth from {self.source} (affine-invariant inverse depth: no distances)"
        span = ""
        if self.near is not None:
            far = "infinity" if self.far is None or not math.isfinite(self.far) else f"{self.far:.4g}"
            span = f", surfaces {self.near:.4g} to {far} {self.unit}"
        return f"{self.quantity} in {self.unit} from {self.source}{span}"

    def to_metadata(self) -> dict:
        """A JSON-able dict (file metadata, image custom properties); None fields left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_metadata(), sort_keys=True)

    @classmethod
    def from_metadata(cls, data) -> "DepthUnits | None":
        """Units from a dict written by to_metadata, its JSON text, or a file's whole metadata dict
        (the ``fathom.units`` entry); None when there are none."""
        if data is None:
            return None
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        data = dict(data)
        if METADATA_KEY in data:
            return cls.from_metadata(data[METADATA_KEY])
        if "quantity" not in data:
            return None
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if known.get("fit") is not None:
            known["fit"] = dict(known["fit"])
        return cls(**known)


def distances(values, units: DepthUnits) -> np.ndarray:
    """Distances in scene units of stored depth values (float64, inf where infinitely far).

    Raises InvalidSettingsError for a relative map: align it first (engine.metric)."""
    if units is None or not units.has_distances:
        source = units.source if units is not None else "this depth map"
        raise InvalidSettingsError(
            f"The depth from {source} is relative (no scale): it has no distances. Align it "
            "to known distances first (Metric Depth), or use a Scene Z map."
        )
    x = units.decode(values)
    if units.quantity == "distance":
        return x
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.maximum(x, 1e-300), np.inf)


def surface_range(dist, mask=None):
    finite = np.isfinite(dist) & (dist > 0)
    if mask is not None:
        finite &= mask
    if not finite.any():
        return None, None
    return float(dist[finite].min()), float(dist[finite].max())


def from_normalization(mode, invert, value_range, *, quantity, source, values=None) -> DepthUnits:
    """The units of a map made by engine.normalize.normalize_with_range from input x in ``quantity``
    ('relative' for a network's disparity, 'inverse-distance' for 1/Z, 'distance' for Z), where
    ``value_range`` is the (lo, hi) it returned. ``values`` (the map) fills near and far."""
    lo, hi = value_range
    if mode == "raw":
        units = DepthUnits(quantity, source, 0.0, 1.0, 1.0, float(hi) if invert else None)
    else:
        units = DepthUnits(
            quantity,
            source,
            float(lo),
            float(hi - lo),
            2.0 if mode == "v2-style" else 1.0,
            1.0 if invert else None,
            clipped=mode == "v2-style",
        )
    if values is not None and units.has_distances:
        near, far = surface_range(distances(values, units))
        units = replace(units, near=near, far=far)
    return units


def relative_units(mode, invert, *, source) -> DepthUnits:
    """The units of a network's map when only its settings are known (a server's result, an older file):
    enough to align it, since a relative map's own scale and shift do not matter, only whether it was
    inverted and squared ('v2-style')."""
    if mode == "raw":  # raw + invert is (max - x): affine in x whatever the max
        return DepthUnits("relative", source, 0.0, -1.0 if invert else 1.0)
    return DepthUnits(
        "relative",
        source,
        power=2.0 if mode == "v2-style" else 1.0,
        flip=1.0 if invert else None,
        clipped=mode == "v2-style",
    )
