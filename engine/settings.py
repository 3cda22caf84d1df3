"""The settings of one depth generation, shared by the add-on, the CLI and the server.

They follow the public depth-map API: ``resolution`` is its resolutionLowerLimit (the short
side the network sees), ``post_resize`` brings the map back to the source size, ``invert``
flips the near-is-bright convention, ``normalization`` picks how values are scaled.
``tiling`` decides what happens past what one network pass can hold: "detail" (sharp detail,
tiled: the whole picture's shape from one pass, fine detail from tiles; the better of the two
on the oracle scenes, see tests/engine/test_tiling.py) or "whole" (whole picture only: one pass
at the largest resolution that fits).
"""

from dataclasses import dataclass, fields, replace

from .errors import InvalidSettingsError

MIN_RESOLUTION = 256
MAX_RESOLUTION = 2048
DEFAULT_RESOLUTION = 518  # Depth Anything V2's native input size

NORMALIZATIONS = ("standard", "v2-style", "raw")
# Speed against quality. best: the exact fp32 network (default); standard: int8 weights on the CPU
# (about 1 % of the range from exact); draft: int8 and a network side of at most DRAFT_RESOLUTION.
QUALITIES = ("best", "standard", "draft")
DRAFT_RESOLUTION = 364
DEVICES = ("auto", "cpu", "gpu")
OUTPUT_FORMATS = ("exr32", "exr16", "png16", "png8")
TILINGS = ("detail", "whole")
DEFAULT_MODEL = "da2-small"


@dataclass(frozen=True)
class DepthSettings:
    model: str = DEFAULT_MODEL
    resolution: int = DEFAULT_RESOLUTION
    invert: bool = False  # False: near = bright (white near, black far)
    post_resize: bool = True
    normalization: str = "standard"
    output_format: str = "exr32"
    threads: int = 0  # onnxruntime intra-op threads; 0 lets it choose
    tiling: str = "detail"
    quality: str = "best"
    device: str = "auto"  # auto: a GPU when onnxruntime has one, else the CPU

    def validated(self) -> "DepthSettings":
        """Return the settings with names canonicalised, or raise InvalidSettingsError."""
        norm = self.normalization.lower().replace("_", "-")
        if norm not in NORMALIZATIONS:
            raise InvalidSettingsError(
                f"Unknown normalization {self.normalization!r}: use one of {', '.join(NORMALIZATIONS)}."
            )
        fmt = self.output_format.lower()
        if fmt not in OUTPUT_FORMATS:
            raise InvalidSettingsError(
                f"Unknown output format {self.output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}."
            )
        tiling = str(self.tiling).lower()
        if tiling not in TILINGS:
            raise InvalidSettingsError(
                f"Unknown tiling {self.tiling!r}: use 'detail' (sharp detail, tiled) or 'whole' (whole picture only)."
            )
        if not isinstance(self.resolution, int) or not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise InvalidSettingsError(
                f"Resolution {self.resolution!r} is out of range: choose {MIN_RESOLUTION} to {MAX_RESOLUTION} "
                f"(the short side the network sees; {DEFAULT_RESOLUTION} is the model's native size)."
            )
        if not isinstance(self.threads, int) or self.threads < 0:
            raise InvalidSettingsError(f"Thread count {self.threads!r} must be 0 (automatic) or more.")
        quality, device = str(self.quality).lower(), str(self.device).lower()
        if quality not in QUALITIES:
            raise InvalidSettingsError(f"Unknown quality {self.quality!r}: use one of {', '.join(QUALITIES)}.")
        if device not in DEVICES:
            raise InvalidSettingsError(f"Unknown device {self.device!r}: use one of {', '.join(DEVICES)}.")
        # Draft caps the network's side here, so every path (single, tiled, batched) and the recorded
        # settings agree on what the network saw.
        resolution = min(self.resolution, DRAFT_RESOLUTION) if quality == "draft" else self.resolution
        return replace(
            self,
            normalization=norm,
            output_format=fmt,
            tiling=tiling,
            quality=quality,
            device=device,
            resolution=resolution,
        )


# What a user sets per generation (the scene's Depth settings, the API's and the CLI's options);
# threads and device are machine settings, from the preferences.
SETTING_NAMES = tuple(f.name for f in fields(DepthSettings) if f.name not in ("threads", "device"))
