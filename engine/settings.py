"""The settings of one depth generation, shared by the add-on, the CLI and the server.

They follow the public depth-map API: ``resolution`` is its resolutionLowerLimit (the short
side the network sees), ``post_resize`` brings the map back to the source size, ``invert``
flips the near-is-bright convention, ``normalization`` picks how values are scaled.
"""

from dataclasses import dataclass, fields, replace

from .errors import InvalidSettingsError

MIN_RESOLUTION = 256
MAX_RESOLUTION = 2048
DEFAULT_RESOLUTION = 518  # Depth Anything V2's native input size

NORMALIZATIONS = ("standard", "v2-style", "raw")
OUTPUT_FORMATS = ("exr32", "exr16", "png16", "png8")
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
        if not isinstance(self.resolution, int) or not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise InvalidSettingsError(
                f"Resolution {self.resolution!r} is out of range: choose {MIN_RESOLUTION} to {MAX_RESOLUTION} "
                f"(the short side the network sees; {DEFAULT_RESOLUTION} is the model's native size)."
            )
        if not isinstance(self.threads, int) or self.threads < 0:
            raise InvalidSettingsError(f"Thread count {self.threads!r} must be 0 (automatic) or more.")
        return replace(self, normalization=norm, output_format=fmt)


# What a user sets per generation (the scene's Depth settings, the API's and the CLI's options);
# threads is a machine setting, from the preferences.
SETTING_NAMES = tuple(f.name for f in fields(DepthSettings) if f.name != "threads")
