"""The depth-map request's parameters, validated once for JSON bodies and multipart forms alike."""

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

NORMALIZATION_MODES = {"Standard": "standard", "V2-Style": "v2-style", "Raw": "raw"}


class DepthMapParameters(BaseModel):
    """Parameters of POST /v2/artworks/depth-map (the public depth-map API's names)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    imageUrl: Optional[str] = Field(
        None,
        description="http(s) URL of the picture, or a data: URI "
        "(data:image/png;base64,...). Multipart uploads send the file as `image` instead.",
    )
    invertDepth: bool = Field(False, description="true: near is dark, far is bright.")
    resolutionLowerLimit: int = Field(
        1024, ge=256, le=2048, description="Short side the network sees, 256..2048, a multiple of 64."
    )
    usePostResize: bool = Field(True, description="Resize the depth map back to the picture's size.")
    webhook: Optional[str] = Field(
        None,
        description="https URL that receives the finished artwork, signed "
        "per Standard Webhooks with the secret shown by GET /v2/me.",
    )
    useVersion3: bool = Field(False, description="Use a Depth Anything V3 model (when this server has one).")
    model: Optional[str] = Field(None, description="Model name; GET /v2/pricing lists what this server has.")
    normalizationMode: Literal["Standard", "V2-Style", "Raw"] = "Standard"

    @field_validator("resolutionLowerLimit")
    @classmethod
    def _multiple_of_64(cls, value):
        if value % 64:
            lower = value // 64 * 64
            raise ValueError(f"must be a multiple of 64, for example {max(lower, 256)} or {min(lower + 64, 2048)}")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook_scheme(cls, value):
        if value is not None and not value.lower().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value
